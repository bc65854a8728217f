-- Initial schema: patients, observations, audit events, worker liveness.
-- depends:

CREATE TABLE patients (
    patient_key       uuid PRIMARY KEY,
    identifier_system text NOT NULL,
    identifier_value  text NOT NULL,
    first_seen        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (identifier_system, identifier_value)
);

CREATE TABLE observations (
    id           uuid PRIMARY KEY,           -- deterministic: replays merge
    patient_key  uuid NOT NULL REFERENCES patients (patient_key),
    code         text NOT NULL,              -- canonical LOINC code
    effective    timestamptz NOT NULL,
    value        double precision,
    unit         text,
    components   jsonb,
    device       text,
    source       text NOT NULL,
    organisation text,
    received     timestamptz NOT NULL,
    stored       timestamptz NOT NULL DEFAULT now(),
    resource     jsonb NOT NULL              -- the normalised FHIR Observation
);
CREATE INDEX observations_patient_time ON observations (patient_key, effective DESC, id DESC);
CREATE INDEX observations_patient_code_time ON observations (patient_key, code, effective DESC);

-- Every read of personal health data (pasientjournalloven § 22): who, when, which patient, why.
CREATE TABLE audit_events (
    id           bigserial PRIMARY KEY,
    occurred     timestamptz NOT NULL DEFAULT now(),
    patient_key  uuid,
    agent        text NOT NULL,
    organisation text,
    purpose      text,
    action       text NOT NULL,
    resource     text NOT NULL,
    outcome      text NOT NULL,
    detail       jsonb
);
CREATE INDEX audit_events_patient_time ON audit_events (patient_key, occurred DESC);

-- Liveness of streams workers, for /healthz: which worker holds how many partitions.
CREATE TABLE worker_status (
    worker_id  text PRIMARY KEY,
    group_id   text NOT NULL,
    partitions integer NOT NULL,
    updated_at timestamptz NOT NULL
);
