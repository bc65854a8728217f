"""Settings of the API process, read once at start-up from ``MALESTROM_*`` variables."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from ingestion.identifiers import IdentityMode
from ingestion.observations import UnknownCodes

__all__ = ["ApiSettings"]


class ApiSettings(BaseSettings):
    """What the API needs to run."""

    model_config = SettingsConfigDict(env_prefix="MALESTROM_", frozen=True, extra="ignore")

    kafka_bootstrap: str
    database_url: SecretStr
    topic_prefix: str = "malestrom"
    app_id: str = "malestrom-streams"  # the streams worker's group, for /healthz
    identity_mode: IdentityMode = IdentityMode.TEST
    unknown_codes: UnknownCodes = UnknownCodes.REJECT  # or "store": kept, not used for scoring
    publish_timeout: float = 4.0
    worker_stale_after: float = 15.0
    # Readings measured longer ago than this at acceptance take the backfill lane.
    backfill_after_minutes: float = 60.0
