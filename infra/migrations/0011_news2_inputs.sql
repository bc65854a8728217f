-- NEWS2 inputs as typed columns, so the scorer reads them without digging in the resource;
-- the sending system (provenance, from its access token) beside the source (template or format).
-- depends: 0002_observations_timeseries 0009_news2_alerts
-- One column per statement: TimescaleDB allows ADD COLUMN (nullable, no default) on a hypertable,
-- also with compression enabled; on plain PostgreSQL the partitions inherit it.
ALTER TABLE observations ADD COLUMN systolic double precision;
ALTER TABLE observations ADD COLUMN acvpu text;
ALTER TABLE observations ADD COLUMN on_oxygen boolean;
ALTER TABLE observations ADD COLUMN client_id text;
ALTER TABLE observations ADD COLUMN client_organisation text;

-- Readings stored before this migration (the codes as of now; ingestion/news2_inputs.py).
UPDATE observations SET systolic = (
    SELECT (c #>> '{valueQuantity,value}')::float8
    FROM jsonb_array_elements(resource -> 'component') c
    WHERE c #>> '{code,coding,0,code}' = '8480-6' LIMIT 1)
WHERE code = '85354-9';
UPDATE observations SET acvpu = CASE coalesce(
        resource ->> 'valueString', resource #>> '{valueCodeableConcept,text}',
        resource #>> '{valueCodeableConcept,coding,0,code}')
    WHEN '248234008' THEN 'A' WHEN '130987000' THEN 'C' WHEN '450847001' THEN 'V'
    WHEN '450848006' THEN 'P' WHEN '422768004' THEN 'U'
    ELSE upper(trim(coalesce(resource ->> 'valueString', resource #>> '{valueCodeableConcept,text}')))
    END
WHERE code = '1104441000000107';
UPDATE observations SET on_oxygen = CASE code
    WHEN '722742002' THEN false WHEN '3151-8' THEN value > 0 ELSE value > 21 END
WHERE code IN ('722742002', '3151-8', '3150-0');
