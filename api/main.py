"""The FastAPI application, built from settings by `create_app`."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI, Request
from psycopg_pool import AsyncConnectionPool

from api.auth.authenticator import build_authenticator
from api.auth.middleware import AuthMiddleware
from api.auth.principals import Principal, Scope
from api.auth.replay import ReplayCache, ReplayStore, configure_replay_connection
from api.deps import requires
from api.errors import install_error_handlers
from api.guards import RequestGuard
from api.known import StoredCustody, StoredIds
from api.live import AlertFeed
from api.metrics import ApiMetrics
from api.openapi import install_contract
from api.requests_log import RequestLog
from api.routes import (
    alerts,
    audit,
    health,
    me,
    metadata,
    metrics,
    news2,
    observations,
    organisations,
    trends,
)
from api.settings import ApiSettings
from api.storage import probe_storage
from api.web import install_pages, open_web, serve_offline_docs
from ingestion import receiver, vendor_receiver
from ingestion.kafka import TopicWatch, WatchedPublisher
from ingestion.mapping import load_templates
from ingestion.prometheus import serve_loopback
from ingestion.publisher import KafkaPublisher, Publisher
from ingestion.topics import Topics

__all__ = ["create_app"]


def create_app(
    settings: ApiSettings,
    *,
    expected_migrations: tuple[str, ...],
    publisher: Publisher | None = None,
    replay: ReplayStore | None = None,
    extra_routers: tuple[APIRouter, ...] = (),
) -> FastAPI:
    """Build the API and the pages. ``expected_migrations`` are the schema versions /healthz
    requires; ``publisher`` and ``replay`` replace the Kafka producer and the shared replay
    cache (tests of one process without a broker or database); ``extra_routers`` are added by
    the composition root (the development issuer's login pages)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = AsyncConnectionPool(
            settings.database_url.get_secret_value(),
            open=False,
            min_size=1,
            max_size=10,
            timeout=settings.database_timeout,  # a request waits this long, then 503
            check=AsyncConnectionPool.check_connection,  # a connection gone stale is replaced
        )
        await pool.open(wait=False)
        app.state.storage = None
        try:  # the storage profile, for /healthz; probed again there if the database is late
            async with pool.connection(timeout=5.0) as conn:
                app.state.storage = await probe_storage(conn=conn)
        except Exception:  # noqa: BLE001, S110 - start-up must not fail on a late database
            pass
        kafka = publisher or KafkaPublisher(
            bootstrap=settings.kafka_bootstrap, timeout_s=settings.publish_timeout
        )
        app.state.pool = pool
        app.state.publisher = kafka
        app.state.topic_watch = watch = None if publisher else _topic_watch(settings)
        watching = None if watch is None else await _start_watching(watch)
        replay_pool = AsyncConnectionPool(
            settings.database_url.get_secret_value(),
            open=False,
            min_size=1,
            max_size=4,
            timeout=settings.database_timeout,
            configure=configure_replay_connection,
        )
        await replay_pool.open(wait=False)
        app.state.authenticator = build_authenticator(settings, replay or ReplayCache(replay_pool))
        app.state.receiver = receiver.Receiver(
            publisher=kafka if watch is None else WatchedPublisher(kafka, watch),
            topics=Topics(settings.topic_prefix),
            mode=settings.identity_mode,
            known=StoredIds(pool),
            unknown_codes=settings.unknown_codes,
            backfill_after=dt.timedelta(minutes=settings.backfill_after_minutes),
            sender_of=_sender_of,
            custody=StoredCustody(pool),
            meter=app.state.metrics,
        )
        app.state.templates = load_templates()
        app.state.alert_feed = feed = AlertFeed(settings.database_url.get_secret_value(), pool)
        app.state.alert_feed.start()
        unwatch = app.state.metrics.watch(
            pools={"api": pool, "replay": replay_pool}, sse_clients=lambda: feed.subscribers
        )
        http = open_web(app)
        try:
            with serve_loopback(app.state.metrics.registry, settings.api_metrics_port, what="API"):
                yield
        finally:
            unwatch()
            if watching is not None:
                watching.cancel()
            await http.aclose()
            await app.state.alert_feed.stop()
            if isinstance(kafka, KafkaPublisher):
                kafka.close()
            await pool.close()
            await replay_pool.close()

    app = FastAPI(
        title="malestrom", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None
    )
    app.state.settings = settings
    app.state.expected_migrations = expected_migrations
    app.state.metrics = ApiMetrics()
    install_error_handlers(app)
    app.add_middleware(AuthMiddleware, public_url=settings.public_url)
    app.add_middleware(RequestGuard)  # sizes and NUL bytes, before anything reads them
    app.add_middleware(RequestLog)  # outermost: every answer, refusals included, is logged
    ingest = [Depends(requires(Scope.INGEST))]
    app.include_router(health.router)
    app.include_router(metadata.router)
    app.include_router(receiver.router, dependencies=ingest)
    app.include_router(vendor_receiver.router, dependencies=ingest)
    for module in (observations, trends, news2, organisations, alerts, me, audit, metrics):
        app.include_router(module.router)
    serve_offline_docs(app)
    install_pages(app)
    for router in extra_routers:
        app.include_router(router)
    install_contract(app)
    return app


def _topic_watch(settings: ApiSettings) -> TopicWatch:
    topics = Topics(settings.topic_prefix).all()
    return TopicWatch(settings.kafka_bootstrap, topics, partitions=settings.partitions)


async def _start_watching(watch: TopicWatch) -> asyncio.Task[None]:
    """Check the topics at start-up, then keep watching them (on errors and on a schedule)."""
    await watch.check()
    return asyncio.create_task(watch.watch())


def _sender_of(request: Request) -> receiver.Sender:
    """The sending system of an ingest request, from its access token."""
    principal: Principal = request.state.principal
    return receiver.Sender(principal.client_id, principal.organisation)
