DROP TRIGGER alert_events_notify ON alert_events;
DROP FUNCTION malestrom_notify_alert_event();
DROP TABLE alert_events;
DROP TABLE alerts;
DROP TABLE news2_scores;
DROP TABLE patient_settings_history;
DROP TABLE patient_settings;
DROP TABLE organisations;
