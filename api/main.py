"""The FastAPI application, built from settings by `create_app`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool

from api.errors import install_error_handlers
from api.routes import health, observations
from api.settings import ApiSettings
from ingestion import receiver
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
        kafka = publisher or KafkaPublisher(
            bootstrap=settings.kafka_bootstrap, timeout_s=settings.publish_timeout
        )
        app.state.pool = pool
        app.state.publisher = kafka
        app.state.receiver = receiver.Receiver(
            publisher=kafka, topics=Topics(settings.topic_prefix), mode=settings.identity_mode
        )
        try:
            yield
        finally:
            if isinstance(kafka, KafkaPublisher):
                kafka.close()
            await pool.close()

    app = FastAPI(title="malestrom", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.expected_migrations = expected_migrations
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(receiver.router)
    app.include_router(observations.router)
    return app
