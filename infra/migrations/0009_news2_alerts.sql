-- NEWS2 in the stream: organisation and patient settings, scores, alerts and their events.
-- depends: 0001_initial

-- An organisation's NEWS2 settings (Helsedirektoratet: each organisation sets its response).
CREATE TABLE organisations (
    org_id                    text PRIMARY KEY,
    name                      text,
    policy                    jsonb NOT NULL DEFAULT '{"name": "RCP"}',
    freshness_minutes         integer NOT NULL DEFAULT 60 CHECK (freshness_minutes > 0),
    context_freshness_minutes integer NOT NULL DEFAULT 1440 CHECK (context_freshness_minutes > 0),
    ack_timeout_minutes       integer NOT NULL DEFAULT 15 CHECK (ack_timeout_minutes > 0),
    updated_by                text NOT NULL,
    updated_at                timestamptz NOT NULL
);

-- A patient's NEWS2 settings, set by a clinician; the history keeps every version.
CREATE TABLE patient_settings (
    patient_key               uuid PRIMARY KEY REFERENCES patients (patient_key),
    organisation              text,
    spo2_scale                smallint NOT NULL DEFAULT 1 CHECK (spo2_scale IN (1, 2)),
    long_term_oxygen          boolean,  -- true: on oxygen per care plan; false: room air; null: unknown
    freshness_minutes         integer CHECK (freshness_minutes > 0),
    context_freshness_minutes integer CHECK (context_freshness_minutes > 0),
    expected_interval_minutes integer CHECK (expected_interval_minutes > 0),
    set_by                    text NOT NULL,
    set_at                    timestamptz NOT NULL
);
CREATE INDEX patient_settings_organisation ON patient_settings (organisation);

CREATE TABLE patient_settings_history (
    id          bigserial PRIMARY KEY,
    patient_key uuid NOT NULL,
    settings    jsonb NOT NULL,
    set_by      text NOT NULL,
    set_at      timestamptz NOT NULL
);

-- One NEWS2 score per patient and instant; a late reading re-scores (updates) it.
CREATE TABLE news2_scores (
    patient_key  uuid NOT NULL REFERENCES patients (patient_key),
    effective    timestamptz NOT NULL,
    id           uuid NOT NULL,           -- the score Observation's id
    organisation text,
    total        smallint,                -- null when incomplete
    band         text NOT NULL,
    red_flag     boolean NOT NULL,
    partial_sum  smallint NOT NULL,
    level        text NOT NULL,           -- alert level under the organisation's policy
    spo2_scale   smallint NOT NULL,
    subscores    jsonb NOT NULL,
    inputs       jsonb NOT NULL,          -- parameter → {id, effective}: the derivedFrom
    oldest_input timestamptz,
    computed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (patient_key, effective)
);
CREATE INDEX news2_scores_organisation ON news2_scores (organisation, patient_key, effective DESC);

CREATE TABLE alerts (
    id              uuid PRIMARY KEY,     -- deterministic: a replay raises nothing new
    patient_key     uuid NOT NULL REFERENCES patients (patient_key),
    organisation    text,
    kind            text NOT NULL CHECK (kind IN ('news2', 'missing-measurement')),
    level           text NOT NULL CHECK (level IN ('urgent', 'emergency')),
    status          text NOT NULL CHECK (status IN ('open', 'acknowledged', 'resolved')),
    reason          text NOT NULL,
    score_effective timestamptz,          -- the score that raised it
    raised_at       timestamptz NOT NULL,
    acknowledged_by text,
    acknowledged_at timestamptz,
    resolved_by     text,
    resolved_at     timestamptz,
    resolution_note text,
    escalated_at    timestamptz
);
-- No alert storms: at most one unresolved alert per patient and kind.
CREATE UNIQUE INDEX alerts_one_active ON alerts (patient_key, kind) WHERE status <> 'resolved';
CREATE INDEX alerts_organisation_status ON alerts (organisation, status, raised_at DESC);

CREATE TABLE alert_events (
    id       bigserial PRIMARY KEY,       -- the SSE event id (Last-Event-ID)
    alert_id uuid NOT NULL REFERENCES alerts (id),
    at       timestamptz NOT NULL,
    type     text NOT NULL,               -- raised, upgraded, escalated, acknowledged, resolved
    actor    text,
    level    text NOT NULL,
    status   text NOT NULL,
    detail   jsonb
);
CREATE INDEX alert_events_alert ON alert_events (alert_id, id);

-- Wake the API's live stream the moment an event is committed.
CREATE FUNCTION malestrom_notify_alert_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('malestrom_alert_events', NEW.id::text);
    RETURN NULL;
END;
$$;
CREATE TRIGGER alert_events_notify AFTER INSERT ON alert_events
    FOR EACH ROW EXECUTE FUNCTION malestrom_notify_alert_event();
