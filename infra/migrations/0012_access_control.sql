-- Access control: organisations by number with a parent, which organisations a patient's data
-- came from, seen DPoP proof ids (shared by every API replica), and the full access record.
-- depends: 0009_news2_alerts

ALTER TABLE organisations ADD COLUMN parent text;  -- the parent's organisation number
CREATE INDEX organisations_parent ON organisations (parent);

-- An organisation whose systems sent a patient's readings holds data about that patient.
CREATE TABLE patient_organisations (
    patient_key  uuid NOT NULL,
    organisation text NOT NULL,
    first_seen   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (patient_key, organisation)
);
CREATE INDEX patient_organisations_organisation ON patient_organisations (organisation);

-- RFC 9449 § 11.1: a proof's jti is refused a second time within its window.
CREATE TABLE dpop_jtis (
    digest  bytea PRIMARY KEY,  -- SHA-256 of (key thumbprint, jti)
    expires timestamptz NOT NULL
);
CREATE INDEX dpop_jtis_expires ON dpop_jtis (expires);

-- Who read: the person (identity number, HPR, name), the system (client id), the role, why
-- (decision reference of the trust framework), and the request's correlation id.
ALTER TABLE audit_events
    ADD COLUMN actor_kind     text,
    ADD COLUMN actor_pid      text,
    ADD COLUMN actor_hpr      text,
    ADD COLUMN actor_name     text,
    ADD COLUMN client_id      text,
    ADD COLUMN role           text,
    ADD COLUMN decision_ref   text,
    ADD COLUMN correlation_id text,
    ADD COLUMN entity_count   integer;
CREATE INDEX audit_events_time ON audit_events (occurred DESC);
