"""Settings of `malestrom up` (the supervisor), read once at start-up from ``MALESTROM_*``."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from api.settings import is_dev_issuer
from infra.engine import EngineChoice, License

__all__ = ["UpSettings"]


class UpSettings(BaseSettings):
    """External services (when set, nothing embedded is started for them) and topic layout."""

    model_config = SettingsConfigDict(env_prefix="MALESTROM_", frozen=True, extra="ignore")

    kafka_bootstrap: str | None = None
    database_url: SecretStr | None = None
    # The embedded PostgreSQL: "auto" preloads TimescaleDB when it is installed in it,
    # "postgresql" never does, "timescaledb" requires it; the licence picks its edition.
    engine: EngineChoice = "auto"
    timescaledb_license: License = "timescale"
    topic_prefix: str = "malestrom"
    partitions: int = 8
    # Group join takes about half the session timeout: short for the embedded broker.
    embedded_session_timeout: float = 6.0
    # A crashed child is restarted with back-off (1, 2, 4, … s, at most restart_max_delay); one
    # that ran restart_stable_after seconds starts again from 1 s; restart_limit crashes within
    # restart_window seconds and `up` gives up and stops everything.
    restart_limit: int = 5
    restart_window: float = 300.0
    restart_stable_after: float = 60.0
    restart_max_delay: float = 30.0
    env: str = "development"
    identity_mode: str = "test"
    helseid_issuer: str | None = None
    citizen_issuer: str | None = None

    @property
    def wants_dev_issuer(self) -> bool:
        """Development with no issuer configured: `malestrom up` makes a local one."""
        return self.env == "development" and not (self.helseid_issuer or self.citizen_issuer)

    @property
    def allows_dev_proxy(self) -> bool:
        """Development, synthetic identities only, and no issuer but the development one: the
        development proxy (`infra.devproxy`) may run."""
        issuers = [i for i in (self.helseid_issuer, self.citizen_issuer) if i]
        return (
            self.env == "development"
            and self.identity_mode != "production"
            and all(map(is_dev_issuer, issuers))
        )
