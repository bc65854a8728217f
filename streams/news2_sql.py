"""The SQL of the NEWS2 stage, in one place (plain PostgreSQL ≥ 14; works on TimescaleDB).

Codes are parameters (``codes``, ``news2_code``) from `ingestion.news2_inputs`, never literals.
"""

from __future__ import annotations

__all__ = [
    "CONTEXTS",
    "COPY_SCORES",
    "ESCALATE_OVERDUE",
    "INSERT_EVENT",
    "RAISE_ALERT",
    "RAISE_MISSING",
    "READINGS",
    "SCORES",
    "SCORE_STAGING",
    "SCORE_TYPES",
    "UPGRADE_ALERT",
    "UPSERT_SCORES",
    "UPSERT_SCORE_OBSERVATIONS",
]

# Settings of each patient, merged with their organisation's (the one a clinician set), and the
# level of the patient's unresolved NEWS2 alert: read with every batch, because people change
# them through the API and the escalation timer moves alerts (at most one: ``alerts_one_active``).
CONTEXTS = """
SELECT p.patient_key::text, s.organisation,
       coalesce(s.spo2_scale, 1), s.long_term_oxygen,
       coalesce(s.freshness_minutes, o.freshness_minutes, 60),
       coalesce(s.context_freshness_minutes, o.context_freshness_minutes, 1440),
       o.policy, p.identifier_system, p.identifier_value, a.level
FROM patients p
LEFT JOIN patient_settings s ON s.patient_key = p.patient_key
LEFT JOIN organisations o ON o.org_id = s.organisation
LEFT JOIN alerts a ON a.patient_key = p.patient_key AND a.kind = 'news2' AND a.status <> 'resolved'
WHERE p.patient_key = ANY(%(keys)s::uuid[])
"""

# NEWS2 inputs in each patient's span (``hi`` null: no end), from the typed columns;
# ``codes`` are those of `ingestion.news2_inputs`.
READINGS = """
SELECT x.patient_key::text, x.id::text, x.code, x.effective, x.value, x.systolic, x.acvpu,
       x.on_oxygen, x.organisation
FROM observations x
JOIN unnest(%(keys)s::uuid[], %(lo)s::timestamptz[], %(hi)s::timestamptz[]) AS span(key, lo, hi)
  ON x.patient_key = span.key AND x.effective >= span.lo
 AND (span.hi IS NULL OR x.effective < span.hi)
WHERE x.code = ANY(%(codes)s::text[])
"""

# Stored scores in each patient's span, and the newest two of the patients seen the first time.
SCORES = """
SELECT x.patient_key::text, x.effective, x.level, x.red_flag, x.band, x.total, x.partial_sum,
       x.spo2_scale, x.organisation
FROM news2_scores x
JOIN unnest(%(keys)s::uuid[], %(lo)s::timestamptz[], %(hi)s::timestamptz[]) AS span(key, lo, hi)
  ON x.patient_key = span.key AND x.effective >= span.lo
 AND (span.hi IS NULL OR x.effective < span.hi)
UNION
SELECT k.key::text, l.effective, l.level, l.red_flag, l.band, l.total, l.partial_sum,
       l.spo2_scale, l.organisation
FROM unnest(%(first)s::uuid[]) AS k(key)
CROSS JOIN LATERAL (
    SELECT effective, level, red_flag, band, total, partial_sum, spo2_scale, organisation
    FROM news2_scores WHERE patient_key = k.key ORDER BY effective DESC LIMIT 2) l
"""

# Scores arrive by COPY in a per-transaction staging table, then move in two statements.
SCORE_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS news2_staging (
    patient_key uuid, effective timestamptz, id uuid, organisation text, total smallint,
    band text, red_flag boolean, partial_sum smallint, level text, spo2_scale smallint,
    subscores jsonb, inputs jsonb, oldest_input timestamptz, resource jsonb
) ON COMMIT DELETE ROWS
"""

COPY_SCORES = "COPY news2_staging FROM STDIN (FORMAT BINARY)"
SCORE_TYPES = [
    "uuid", "timestamptz", "uuid", "text", "int2", "text", "bool", "int2", "text", "int2",
    "jsonb", "jsonb", "timestamptz", "jsonb",
]  # fmt: skip

UPSERT_SCORES = """
INSERT INTO news2_scores (patient_key, effective, id, organisation, total, band, red_flag,
                          partial_sum, level, spo2_scale, subscores, inputs, oldest_input,
                          computed_at)
SELECT patient_key, effective, id, organisation, total, band, red_flag, partial_sum, level,
       spo2_scale, subscores, inputs, oldest_input, %(now)s
FROM news2_staging
ON CONFLICT (patient_key, effective) DO UPDATE SET
    organisation = EXCLUDED.organisation, total = EXCLUDED.total, band = EXCLUDED.band,
    red_flag = EXCLUDED.red_flag, partial_sum = EXCLUDED.partial_sum, level = EXCLUDED.level,
    spo2_scale = EXCLUDED.spo2_scale, subscores = EXCLUDED.subscores, inputs = EXCLUDED.inputs,
    oldest_input = EXCLUDED.oldest_input, computed_at = EXCLUDED.computed_at
WHERE (news2_scores.total, news2_scores.band, news2_scores.red_flag, news2_scores.level,
       news2_scores.inputs)
      IS DISTINCT FROM (EXCLUDED.total, EXCLUDED.band, EXCLUDED.red_flag, EXCLUDED.level,
                        EXCLUDED.inputs)
"""

# The score as a FHIR Observation in the observations table, so FHIR search finds it; a late
# reading that changes the score corrects the stored resource.
UPSERT_SCORE_OBSERVATIONS = """
INSERT INTO observations (id, patient_key, code_system, code, effective, value, unit, source,
                          organisation, received, resource)
SELECT id, patient_key, 'http://snomed.info/sct', %(news2_code)s, effective, total,
       '{score}', 'news2', organisation, %(now)s, resource
FROM news2_staging
ON CONFLICT (id, effective) DO UPDATE SET
    value = EXCLUDED.value, organisation = EXCLUDED.organisation,
    received = EXCLUDED.received, resource = EXCLUDED.resource
WHERE (observations.value, observations.resource -> 'interpretation',
       observations.resource -> 'derivedFrom', observations.resource -> 'component')
      IS DISTINCT FROM (EXCLUDED.value, EXCLUDED.resource -> 'interpretation',
                        EXCLUDED.resource -> 'derivedFrom', EXCLUDED.resource -> 'component')
"""

# ON CONFLICT without a target also covers the one-active-alert-per-patient-and-kind index.
RAISE_ALERT = """
INSERT INTO alerts (id, patient_key, organisation, kind, level, status, reason,
                    score_effective, raised_at)
VALUES (%(id)s, %(patient_key)s, %(organisation)s, 'news2', %(level)s, 'open', %(reason)s,
        %(score_effective)s, %(now)s)
ON CONFLICT DO NOTHING
RETURNING id
"""

# The upgraded alert says why it is an emergency now: the reason and score of the upgrade.
UPGRADE_ALERT = """
UPDATE alerts SET level = %(level)s, reason = %(reason)s, score_effective = %(score_effective)s
WHERE patient_key = %(patient_key)s AND kind = 'news2' AND status <> 'resolved'
  AND level = 'urgent' AND %(level)s = 'emergency'
RETURNING id
"""

INSERT_EVENT = """
INSERT INTO alert_events (alert_id, at, type, actor, level, status, detail)
SELECT id, %(now)s, %(type)s, %(actor)s, level, status, %(detail)s FROM alerts WHERE id = %(id)s
RETURNING id
"""

# Open alerts not acknowledged within the organisation's time go up a level (recorded once).
ESCALATE_OVERDUE = """
WITH due AS (
    UPDATE alerts a SET level = 'emergency', escalated_at = %(now)s
    WHERE a.status = 'open' AND a.escalated_at IS NULL
      AND a.raised_at <= %(now)s - make_interval(mins => coalesce(
            (SELECT o.ack_timeout_minutes FROM organisations o WHERE o.org_id = a.organisation),
            15))
    RETURNING a.id, a.patient_key, a.level, a.status
), events AS (
    INSERT INTO alert_events (alert_id, at, type, actor, level, status, detail)
    SELECT id, %(now)s, 'escalated', 'system', level, status,
           '{"reason": "not acknowledged in time"}'::jsonb
    FROM due
    RETURNING id, alert_id
)
SELECT events.id, due.patient_key::text FROM events JOIN due ON due.id = events.alert_id
"""

# Patients with a schedule whose last reading is older than the schedule allows.
RAISE_MISSING = """
WITH overdue AS (
    SELECT s.patient_key, s.organisation, last.seen
    FROM patient_settings s
    CROSS JOIN LATERAL (
        SELECT max(o.effective) AS seen FROM observations o
        WHERE o.patient_key = s.patient_key AND o.code <> %(news2_code)s) last
    WHERE s.expected_interval_minutes IS NOT NULL
      AND coalesce(last.seen, s.set_at)
          < %(now)s - make_interval(mins => s.expected_interval_minutes)
), raised AS (
    INSERT INTO alerts (id, patient_key, organisation, kind, level, status, reason, raised_at)
    SELECT md5(patient_key::text || '|missing|' || coalesce(seen::text, 'never'))::uuid,
           patient_key, organisation, 'missing-measurement', 'urgent', 'open',
           CASE WHEN seen IS NULL THEN 'no measurement received yet'
                ELSE 'no measurement since ' || to_char(seen AT TIME ZONE 'UTC',
                                                        'YYYY-MM-DD"T"HH24:MI"Z"') END,
           %(now)s
    FROM overdue
    ON CONFLICT DO NOTHING
    RETURNING id, patient_key, level, status
), events AS (
    INSERT INTO alert_events (alert_id, at, type, actor, level, status, detail)
    SELECT id, %(now)s, 'raised', 'system', level, status, NULL FROM raised
    RETURNING id, alert_id
)
SELECT events.id, raised.patient_key::text FROM events JOIN raised ON raised.id = events.alert_id
"""
