"""The API's database questions, as keyword-only functions over an async connection."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from psycopg import AsyncConnection, sql
from psycopg.types.json import Jsonb

from api.storage import Segment
from ingestion.panels import StoredComponent, stored_component

__all__ = [
    "Bucket",
    "CodeRef",
    "DateBound",
    "PatientRef",
    "SearchFilter",
    "aggregate_buckets",
    "applied_migrations",
    "count_observations",
    "last_n",
    "latest_units",
    "patient_keys",
    "read_observation",
    "search_observations",
    "worker_partitions",
]

PatientRef = tuple[str | None, str]  # (identifier system or None for any, identifier value)
CodeRef = tuple[str | None, str]  # (code system or None for any, code)
DateBound = tuple[Literal["<", "<=", ">", ">="], dt.datetime]  # effective <op> instant
Bucket = tuple[dt.datetime | None, int, float, float, float]  # start, count, sum, min, max

_ORIGIN = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
# $lastn looks back this far from each code's latest value before it widens to everything:
# with daily partitions a bounded window touches a few partitions instead of all of them.
_LASTN_WINDOWS: tuple[dt.timedelta | None, ...] = (
    dt.timedelta(days=2),
    dt.timedelta(days=62),
    None,
)


async def patient_keys(*, conn: AsyncConnection[Any], patient: PatientRef) -> list[str]:
    """Return the internal keys of the patients the identifier names (one, or none)."""
    system, value = patient
    cur = await conn.execute(
        """
        SELECT patient_key::text FROM patients
        WHERE identifier_value = %(value)s
          AND (%(system)s::text IS NULL OR identifier_system = %(system)s::text)
        ORDER BY 1
        """,
        {"system": system, "value": value},
    )
    return [row[0] for row in await cur.fetchall()]


def _where(
    keys: Sequence[str], codes: Sequence[CodeRef], alias: str = "o"
) -> tuple[sql.Composable, dict[str, Any]]:
    """The patient and code conditions shared by every question; codes may be empty (any)."""
    a = sql.Identifier(alias)
    params: dict[str, Any] = {"keys": list(keys)}
    parts: list[sql.Composable] = [
        sql.SQL("{}.patient_key = %(key)s::uuid").format(a)
        if len(keys) == 1
        else sql.SQL("{}.patient_key = ANY(%(keys)s::uuid[])").format(a)
    ]
    params["key"] = keys[0] if keys else None
    if codes:
        parts.append(_code_match(codes, params, "codes", alias))
    return sql.SQL(" AND ").join(parts), params


@dataclass(frozen=True, slots=True)
class SearchFilter:
    """What a search asks for, besides the patient: codes (of the Observation, of one of its
    components, or of either), category and time bounds."""

    codes: Sequence[CodeRef] = ()
    category: CodeRef | None = None
    dates: Sequence[DateBound] = ()  # on the effective time
    updated: Sequence[DateBound] = ()  # on the time malestrom stored it
    component_codes: Sequence[CodeRef] = ()  # a component with one of these codes
    combo_codes: Sequence[CodeRef] = ()  # the Observation's code or a component's


def _code_match(
    codes: Sequence[CodeRef], params: dict[str, Any], name: str, alias: str = "o"
) -> sql.Composable:
    """``{alias}.code`` is one of ``codes`` (a code alone: of any system); the plain ``code =
    ANY`` first, for the index on code."""
    params[name] = sorted({code for _, code in codes})
    params[f"{name}_any"] = [code for system, code in codes if system is None]
    params[f"{name}_tokens"] = [f"{system}|{code}" for system, code in codes if system is not None]
    return sql.SQL(
        "{a}.code = ANY({n}::text[]) AND ({a}.code = ANY({any}::text[])"
        " OR {a}.code_system || '|' || {a}.code = ANY({t}::text[]))"
    ).format(
        a=sql.Identifier(alias),
        n=sql.Placeholder(name),
        any=sql.Placeholder(f"{name}_any"),
        t=sql.Placeholder(f"{name}_tokens"),
    )


def _component_match(codes: Sequence[CodeRef], params: dict[str, Any], name: str) -> sql.Composable:
    """The Observation has a component of one of ``codes``: from its typed column where the
    component has one (``ingestion.panels``), else from the stored components."""
    parts: list[sql.Composable] = []
    others: list[Jsonb] = []
    for i, (system, code) in enumerate(codes):
        stored = stored_component(system, code)
        if stored is None:
            coding = {"code": code} | ({"system": system} if system else {})
            others.append(Jsonb([{"code": {"coding": [coding]}}]))
            continue
        params[f"{name}{i}"] = stored.panel
        parts.append(
            sql.SQL("(o.code = {} AND o.{} IS NOT NULL)").format(
                sql.Placeholder(f"{name}{i}"), sql.Identifier(stored.column)
            )
        )
    if others:
        params[name] = others
        parts.append(sql.SQL("o.components @> ANY({}::jsonb[])").format(sql.Placeholder(name)))
    return sql.SQL("({})").format(sql.SQL(" OR ").join(parts))


def _search_conditions(
    keys: Sequence[str], wanted: SearchFilter
) -> tuple[list[sql.Composable], dict[str, Any]]:
    where, params = _where(keys, wanted.codes)
    conditions: list[sql.Composable] = [where]
    if wanted.component_codes:
        conditions.append(_component_match(wanted.component_codes, params, "component"))
    if wanted.combo_codes:
        either = [
            sql.SQL("({})").format(_code_match(wanted.combo_codes, params, "combo")),
            _component_match(wanted.combo_codes, params, "combo_component"),
        ]
        conditions.append(sql.SQL("({})").format(sql.SQL(" OR ").join(either)))
    asked = wanted.codes or wanted.component_codes or wanted.combo_codes
    if not asked and wanted.category is None:  # derived NEWS2 scores: when asked for
        conditions.append(sql.SQL("o.source <> 'news2'"))
    if wanted.category is not None:
        system, code = wanted.category
        coding = {"code": code} | ({"system": system} if system else {})
        conditions.append(sql.SQL("o.resource->'category' @> %(category)s"))
        params["category"] = Jsonb([{"coding": [coding]}])
    for column, bounds in (("effective", wanted.dates), ("stored", wanted.updated)):
        for i, (op, instant) in enumerate(bounds):
            name = f"{column}{i}"
            conditions.append(
                sql.SQL("o.{} {} {}").format(
                    sql.Identifier(column), sql.SQL(op), sql.Placeholder(name)
                )
            )
            params[name] = instant
    return conditions, params


async def search_observations(
    *,
    conn: AsyncConnection[Any],
    keys: Sequence[str],
    wanted: SearchFilter = SearchFilter(),
    newest_first: bool = True,
    after: tuple[dt.datetime, str] | None = None,
    count: int,
) -> list[tuple[str, str, str, dt.datetime]]:
    """Return ``(patient_key, id, resource JSON, effective)`` in (effective, id) order.

    Without codes or category the patient's measurements are returned; NEWS2 scores, which
    malestrom derives from them, only when their code or category (survey) is asked for.

    ``after`` is the keyset cursor: the (effective, id) of the last row of the previous page;
    rows inserted meanwhile never shift a page, since a page starts strictly after it.
    """
    if not keys:
        return []
    conditions, params = _search_conditions(keys, wanted)
    direction = sql.SQL("DESC" if newest_first else "ASC")
    if after is not None:
        conditions.append(
            sql.SQL("(o.effective, o.id) {} (%(after_t)s, %(after_id)s::uuid)").format(
                sql.SQL("<" if newest_first else ">")
            )
        )
        params["after_t"], params["after_id"] = after
    params["count"] = count
    query = sql.SQL(
        """
        SELECT o.patient_key::text, o.id::text, o.resource::text, o.effective
        FROM observations o WHERE {}
        ORDER BY o.effective {dir}, o.id {dir} LIMIT %(count)s
        """
    ).format(sql.SQL(" AND ").join(conditions), dir=direction)
    cur = await conn.execute(query, params)
    return [(r[0], r[1], r[2], r[3]) for r in await cur.fetchall()]


async def count_observations(
    *, conn: AsyncConnection[Any], keys: Sequence[str], wanted: SearchFilter
) -> int:
    """How many Observations the search matches (for ``_total=accurate`` and counts)."""
    if not keys:
        return 0
    conditions, params = _search_conditions(keys, wanted)
    query = sql.SQL("SELECT count(*) FROM observations o WHERE {}").format(
        sql.SQL(" AND ").join(conditions)
    )
    cur = await conn.execute(query, params)
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def read_observation(
    *, conn: AsyncConnection[Any], resource_id: str
) -> tuple[str, str, str, dt.datetime] | None:
    """One stored Observation by id: ``(patient_key, resource JSON, version, stored)``."""
    cur = await conn.execute(
        "SELECT patient_key::text, resource::text, md5(resource::text), stored"
        " FROM observations WHERE id = %s::uuid ORDER BY stored DESC LIMIT 1",
        (resource_id,),
    )
    row = await cur.fetchone()
    return (row[0], row[1], row[2], row[3]) if row else None


async def last_n(
    *, conn: AsyncConnection[Any], keys: Sequence[str], codes: Sequence[CodeRef], max_n: int
) -> list[tuple[str, str, str]]:
    """Return ``(patient_key, id, resource JSON)``: the ``max_n`` newest per code, by code."""
    if not keys:
        return []
    where, params = _where(keys, codes, alias="l")
    params["max"] = max_n
    rows: list[tuple[str, str, str, str]] = []
    for window in _LASTN_WINDOWS:
        bound = sql.SQL("AND o.effective > l.effective - %(window)s" if window else "")
        params["window"] = window
        query = sql.SQL(
            """
            SELECT o.patient_key::text, o.id::text, o.resource::text,
                   l.code_system || '|' || l.code
            FROM observations_latest l
            CROSS JOIN LATERAL (
                SELECT o.patient_key, o.id, o.resource, o.effective FROM observations o
                WHERE o.patient_key = l.patient_key AND o.code = l.code
                  AND o.code_system = l.code_system AND o.effective <= l.effective {bound}
                ORDER BY o.effective DESC, o.id DESC LIMIT %(max)s) o
            WHERE {where}
            ORDER BY l.code, l.code_system, l.patient_key, o.effective DESC, o.id DESC
            """
        ).format(bound=bound, where=where)
        cur = await conn.execute(query, params)
        rows = [(r[0], r[1], r[2], r[3]) for r in await cur.fetchall()]
        per_code: dict[tuple[str, str], int] = {}
        for key, _, _, code in rows:
            per_code[key, code] = per_code.get((key, code), 0) + 1
        if all(n >= max_n for n in per_code.values()):
            break  # every code is complete within the window; no need to look further back
    return [(key, rid, resource) for key, rid, resource, _ in rows]


async def latest_units(
    *, conn: AsyncConnection[Any], keys: Sequence[str], codes: Sequence[CodeRef]
) -> dict[tuple[str, str], str | None]:
    """Return the unit of the latest value of each matching ``(code system, code)``."""
    if not keys:
        return {}
    where, params = _where(keys, codes, alias="l")
    query = sql.SQL(
        "SELECT l.code_system, l.code, l.unit FROM observations_latest l WHERE {}"
        " ORDER BY l.effective DESC"
    ).format(where)
    cur = await conn.execute(query, params)
    return {(r[0], r[1]): r[2] for r in await cur.fetchall()}


async def aggregate_buckets(
    *,
    conn: AsyncConnection[Any],
    keys: Sequence[str],
    codes: Sequence[CodeRef],
    segments: Sequence[Segment],
    width: dt.timedelta | None,
) -> list[Bucket]:
    """Return ``(bucket start, count, sum, min, max)`` of the values, one row per bucket.

    The values of a code are those of the Observations of that code and, for a component code
    (`ingestion.panels`: systolic 8480-6, diastolic 8462-4), those of the component in the
    panels that carry it. Each segment is answered from its source (raw rows or an
    aggregate); ``width=None`` folds everything into one row (bucket ``None``) for ``$stats``.
    """
    if not keys or not segments:
        return []
    where, params = _where(keys, codes)
    patient, _ = _where(keys, [])
    components = [c for c in (stored_component(s, code) for s, code in codes) if c is not None]
    params["width"], params["origin"] = width, _ORIGIN
    params["components"] = sorted({c.code for c in components})
    bucket = sql.SQL("date_bin(%(width)s, {}, %(origin)s)" if width else "NULL::timestamptz")
    parts: list[sql.Composable] = []
    for i, seg in enumerate(segments):
        params[f"s{i}"], params[f"e{i}"] = seg.start, seg.end
        start, end = sql.Placeholder(f"s{i}"), sql.Placeholder(f"e{i}")
        if seg.source == "raw":
            value = bucket.format(sql.SQL("o.effective"))
            parts.append(_raw_part(value, where, sql.SQL("value"), start, end))
            parts += [
                _raw_part(value, patient, sql.Identifier(c.column), start, end, panel=c)
                for c in components
            ]
            continue
        value = bucket.format(sql.SQL("o.bucket"))
        parts.append(_rollup_part(value, f"observations_{seg.source}", where, start, end))
        if components:
            only = sql.SQL("{} AND o.code = ANY(%(components)s::text[])").format(patient)
            relation = f"observation_components_{seg.source}"
            parts.append(_rollup_part(value, relation, only, start, end))
    query = sql.SQL(
        "SELECT bucket, sum(n)::bigint, sum(total), min(mn), max(mx)"
        " FROM ({}) s GROUP BY bucket HAVING sum(n) > 0 ORDER BY bucket"
    ).format(sql.SQL(" UNION ALL ").join(parts))
    cur = await conn.execute(query, params)
    return [(r[0], int(r[1]), r[2], r[3], r[4]) for r in await cur.fetchall()]


def _raw_part(
    bucket: sql.Composable,
    where: sql.Composable,
    column: sql.Composable,
    start: sql.Composable,
    end: sql.Composable,
    *,
    panel: StoredComponent | None = None,
) -> sql.Composable:
    """Per bucket, the values of ``column`` of the raw rows (of the panels of ``panel``)."""
    of_panel = (
        sql.SQL(" AND o.code = {}").format(sql.Literal(panel.panel)) if panel else sql.SQL("")
    )
    return sql.SQL(
        "SELECT {b} AS bucket, count(*) AS n, sum(o.{c}) AS total, min(o.{c}) AS mn,"
        " max(o.{c}) AS mx FROM observations o WHERE {w}{p} AND o.{c} IS NOT NULL"
        " AND o.effective >= {s} AND o.effective < {e} GROUP BY 1"
    ).format(b=bucket, c=column, w=where, p=of_panel, s=start, e=end)


def _rollup_part(
    bucket: sql.Composable,
    relation: str,
    where: sql.Composable,
    start: sql.Composable,
    end: sql.Composable,
) -> sql.Composable:
    """Per bucket, the rows of a rollup or continuous aggregate."""
    return sql.SQL(
        "SELECT {b} AS bucket, n, total, minimum AS mn, maximum AS mx FROM {t} o"
        " WHERE {w} AND o.bucket >= {s} AND o.bucket < {e}"
    ).format(b=bucket, t=sql.Identifier(relation), w=where, s=start, e=end)


async def applied_migrations(*, conn: AsyncConnection[Any]) -> set[str]:
    """Return the ids of applied migrations (empty when the schema was never migrated)."""
    cur = await conn.execute("SELECT to_regclass('_yoyo_migration') IS NOT NULL")
    row = await cur.fetchone()
    if not row or not row[0]:
        return set()
    cur = await conn.execute("SELECT migration_id FROM _yoyo_migration")
    return {r[0] for r in await cur.fetchall()}


async def worker_partitions(
    *, conn: AsyncConnection[Any], group_id: str, fresh_within_s: float
) -> int:
    """Return how many partitions the group's live workers hold (0 when none is alive)."""
    cur = await conn.execute(
        """
        SELECT coalesce(sum(partitions), 0) FROM worker_status
        WHERE group_id = %s AND updated_at > now() - make_interval(secs => %s)
        """,
        (group_id, fresh_within_s),
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0
