DROP TABLE worker_status;
DROP TABLE audit_events;
DROP TABLE observations;
DROP TABLE patients;
