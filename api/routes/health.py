"""``GET /healthz``: ready only when the schema is migrated, the broker answers with every topic
at its configured partitions, and the worker holds its partitions."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from api import queries
from api.deps import PoolDep, SettingsDep
from api.storage import StorageProfile, probe_storage
from ingestion.kafka import TopicWatch

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz(request: Request, pool: PoolDep, settings: SettingsDep) -> Response:
    """Component states; 200 when all are up, else 503 with the same object."""
    components: dict[str, Any] = {
        "database": await _database(request, pool),
        "storage": await _storage(request, pool),
        "broker": {"status": "up" if await request.app.state.publisher.ping() else "down"},
        **await _topics(request),
        "worker": await _worker(pool, settings),
    }
    healthy = all(c["status"] == "up" for c in components.values())
    body = {"status": "up" if healthy else "down", "components": components}
    return Response(
        orjson.dumps(body), status_code=200 if healthy else 503, media_type="application/json"
    )


async def _topics(request: Request) -> dict[str, Any]:
    """Which topics are missing or have the wrong partitions, checked now (no component when
    the API runs on a stand-in publisher, without a broker)."""
    watch: TopicWatch | None = request.app.state.topic_watch
    return {} if watch is None else {"topics": (await watch.check()).public()}


async def _database(request: Request, pool: PoolDep) -> dict[str, Any]:
    expected: tuple[str, ...] = request.app.state.expected_migrations
    try:
        async with pool.connection(timeout=2.0) as conn:
            applied = await queries.applied_migrations(conn=conn)
    except Exception as exc:  # noqa: BLE001 - any failure means "down"; the type says why
        return {"status": "down", "error": type(exc).__name__}
    missing = [m for m in expected if m not in applied]
    return {
        "status": "down" if missing else "up",
        "migrations": len(applied),
        "pending": missing,
    }


async def _storage(request: Request, pool: PoolDep) -> dict[str, Any]:
    """The storage profile probed at start-up (probed now if start-up could not)."""
    profile: StorageProfile | None = getattr(request.app.state, "storage", None)
    if profile is None:
        try:
            async with pool.connection(timeout=2.0) as conn:
                profile = await probe_storage(conn=conn)
        except Exception as exc:  # noqa: BLE001 - any failure means "down"; the type says why
            return {"status": "down", "error": type(exc).__name__}
        request.app.state.storage = profile
    return profile.public()


async def _worker(pool: PoolDep, settings: SettingsDep) -> dict[str, Any]:
    try:
        async with pool.connection(timeout=2.0) as conn:
            partitions = await queries.worker_partitions(
                conn=conn, group_id=settings.app_id, fresh_within_s=settings.worker_stale_after
            )
    except Exception as exc:  # noqa: BLE001 - any failure means "down"; the type says why
        return {"status": "down", "error": type(exc).__name__}
    return {"status": "up" if partitions > 0 else "down", "partitions": partitions}
