"""The API without a broker or database: a fake publisher, an in-memory replay cache, and a
hub's token from the test issuer on every request (the receiver needs nothing else)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.testclient import TestClient

from api.auth.replay import MemoryReplayCache
from api.main import create_app
from infra.devissuer import DevIssuer
from ingestion.publisher import Publisher
from tests.helpers import settings_trusting

__all__ = ["offline_api"]


@contextmanager
def offline_api(publisher: Publisher, issuer: DevIssuer) -> Iterator[TestClient]:
    """A running API whose broker is ``publisher`` and whose database is unreachable."""
    settings = settings_trusting(
        issuer, kafka_bootstrap="127.0.0.1:1", database_url="postgresql://nobody@127.0.0.1:1/none"
    )
    app = create_app(
        settings, expected_migrations=(), publisher=publisher, replay=MemoryReplayCache()
    )
    with TestClient(app) as client:
        client.auth = issuer.mint("hub").auth()
        yield client
