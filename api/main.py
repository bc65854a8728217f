"""The FastAPI application, built from settings by `create_app`."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool

from api.errors import install_error_handlers
from api.known import StoredIds
from api.live import AlertFeed
from api.routes import alerts, health, news2, observations, trends
from api.settings import ApiSettings
from api.storage import probe_storage
from ingestion import receiver, vendor_receiver
from ingestion.mapping import load_templates
from ingestion.publisher import KafkaPublisher, Publisher
from ingestion.topics import Topics

__all__ = ["create_app"]


def create_app(
    settings: ApiSettings,
    *,
    expected_migrations: tuple[str, ...],
    publisher: Publisher | None = None,
) -> FastAPI:
    """Build the API. ``expected_migrations`` are the schema versions /healthz requires."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = AsyncConnectionPool(
            settings.database_url.get_secret_value(), open=False, min_size=1, max_size=10
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
        app.state.receiver = receiver.Receiver(
            publisher=kafka,
            topics=Topics(settings.topic_prefix),
            mode=settings.identity_mode,
            known=StoredIds(pool),
            unknown_codes=settings.unknown_codes,
            backfill_after=dt.timedelta(minutes=settings.backfill_after_minutes),
        )
        app.state.templates = load_templates()
        app.state.alert_feed = AlertFeed(settings.database_url.get_secret_value(), pool)
        app.state.alert_feed.start()
        try:
            yield
        finally:
            await app.state.alert_feed.stop()
            if isinstance(kafka, KafkaPublisher):
                kafka.close()
            await pool.close()

    app = FastAPI(title="malestrom", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.expected_migrations = expected_migrations
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(receiver.router)
    app.include_router(vendor_receiver.router)
    app.include_router(observations.router)
    app.include_router(trends.router)
    app.include_router(news2.router)
    app.include_router(alerts.router)
    return app
