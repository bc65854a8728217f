"""Settings of the streams worker, read once at start-up from ``MALESTROM_*`` variables."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["StreamsSettings"]


class StreamsSettings(BaseSettings):
    """What the streams worker needs to run."""

    model_config = SettingsConfigDict(env_prefix="MALESTROM_", frozen=True, extra="ignore")

    kafka_bootstrap: str
    database_url: SecretStr
    topic_prefix: str = "malestrom"
    partitions: int = 8  # every topic's partition count, as `malestrom up` creates them
    app_id: str = "malestrom-streams"
    # Group join takes about half the session timeout; the embedded mode and tests use ~6 s.
    broker_session_timeout: float = 10.0
    batch_size: int = 2000  # readings per batch
    # Backfill batches while live readings arrive: a live batch may wait for one of these.
    backfill_batch_size: int = 200
    # Longest time the broker may hold an empty fetch (librdkafka's default is 500 ms).
    fetch_max_wait_ms: int = 100
    batch_within: float = 0.02  # how long a lane waits to fill a batch: part of the latency
    log_level: str = "warn"
    # How often escalation of unacknowledged alerts and missing measurements are checked.
    alert_check_interval: float = 5.0
    worker_metrics_port: int = 0  # Prometheus metrics on 127.0.0.1 (0: off; streams/metrics.py)
