ALTER TABLE audit_events
    DROP COLUMN actor_kind, DROP COLUMN actor_pid, DROP COLUMN actor_hpr, DROP COLUMN actor_name,
    DROP COLUMN client_id, DROP COLUMN role, DROP COLUMN decision_ref,
    DROP COLUMN correlation_id, DROP COLUMN entity_count;
DROP INDEX audit_events_time;
DROP TABLE dpop_jtis;
DROP TABLE patient_organisations;
DROP INDEX organisations_parent;
ALTER TABLE organisations DROP COLUMN parent;
