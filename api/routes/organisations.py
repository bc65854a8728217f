"""Organisations by their organisation number (Enhetsregisteret): name and parent.

An organisation number malestrom has not seen is registered on first use (a patient placed
in it, a reading sent by its systems); its name and parent can be set later. Setting a parent
lets the parent's staff see the unit's patients, so only operators (``admin``) may do it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from psycopg.rows import dict_row

from api.auth.access import allowed_organisations, require_organisation
from api.deps import AdminDep, PoolDep, ReadDep
from api.models import OrganisationUpdate
from api.routes.params import org_number_param
from ingestion.exceptions import InvalidReadingError

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/organisations", tags=["organisations"])

_COLUMNS = """org_id AS number, name, parent, policy, freshness_minutes, context_freshness_minutes,
ack_timeout_minutes, updated_by, updated_at"""


@router.get("/{org_id}")
async def get_organisation(org_id: str, pool: PoolDep, principal: ReadDep) -> dict[str, Any]:
    """One's own organisation (or a unit of it): name, parent and NEWS2 settings."""
    org_number_param(org_id, "org_id")
    async with pool.connection() as conn:
        require_organisation(
            principal, await allowed_organisations(conn=conn, principal=principal), org_id
        )
        found = await _get(conn, org_id)
    if found is None:
        raise InvalidReadingError("malestrom has not seen this organisation", code="not-found")
    return found


@router.put("/{org_id}")
async def put_organisation(
    org_id: str, body: OrganisationUpdate, pool: PoolDep, principal: AdminDep
) -> dict[str, Any]:
    """Register an organisation or change its name and parent (operators only)."""
    org_number_param(org_id, "org_id")
    if body.parent is not None:
        org_number_param(body.parent, "parent")
        if body.parent == org_id:
            raise InvalidReadingError(
                "an organisation cannot be its own parent", expression="parent"
            )
    async with pool.connection() as conn:
        await conn.execute(
            """
            INSERT INTO organisations (org_id, name, parent, updated_by, updated_at)
            VALUES (%(org)s, %(name)s, %(parent)s, %(by)s, now())
            ON CONFLICT (org_id) DO UPDATE SET name = EXCLUDED.name, parent = EXCLUDED.parent,
                updated_by = EXCLUDED.updated_by, updated_at = EXCLUDED.updated_at
            """,
            {"org": org_id, "name": body.name, "parent": body.parent, "by": principal.actor},
        )
        found = await _get(conn, org_id)
    assert found is not None
    return found


async def _get(conn: Any, org_id: str) -> dict[str, Any] | None:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        f"SELECT {_COLUMNS} FROM organisations WHERE org_id = %s",  # noqa: S608 - constant
        (org_id,),
    )
    row: dict[str, Any] | None = await cur.fetchone()
    if row is not None:
        row["updated_at"] = row["updated_at"].isoformat()
    return row
