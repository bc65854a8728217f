"""Settings of the API process, read once at start-up from ``MALESTROM_*`` variables.

Access control (see `api.auth`): tokens from HelseID (staff and systems) and from the citizen
issuer (ID-porten / Helsenorge), each with its issuer and JWKS, all for one audience. In
production the API refuses to start without both issuers, with the development issuer, or
without an ``https://`` public URL.
"""

from __future__ import annotations

from enum import StrEnum
from urllib.parse import urlsplit

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ingestion.identifiers import IdentityMode
from ingestion.observations import UnknownCodes

__all__ = ["DEV_ISSUER_PATH", "ApiSettings", "Environment", "is_dev_issuer"]

DEV_ISSUER_PATH = "/dev/issuer"  # the development issuer's identifiers end with this path


class Environment(StrEnum):
    """Where the API runs: development allows the local issuer; production refuses it."""

    DEVELOPMENT = "development"
    PRODUCTION = "production"


def is_dev_issuer(issuer: str) -> bool:
    """True for an issuer identifier of `infra.devissuer` (a development-only issuer)."""
    return urlsplit(issuer).path.rstrip("/").endswith(DEV_ISSUER_PATH)


class ApiSettings(BaseSettings):
    """What the API needs to run."""

    model_config = SettingsConfigDict(env_prefix="MALESTROM_", frozen=True, extra="ignore")

    kafka_bootstrap: str
    database_url: SecretStr
    topic_prefix: str = "malestrom"
    partitions: int = 8  # every topic's partition count, as `malestrom up` creates them
    app_id: str = "malestrom-streams"  # the streams worker's group, for /healthz
    identity_mode: IdentityMode = IdentityMode.TEST
    unknown_codes: UnknownCodes = UnknownCodes.REJECT  # or "store": kept, not used for scoring
    publish_timeout: float = 4.0
    database_timeout: float = 3.0  # seconds a request waits for a connection before a 503
    worker_stale_after: float = 15.0
    # Readings measured longer ago than this at acceptance take the backfill lane.
    backfill_after_minutes: float = 60.0
    api_metrics_port: int = 0  # /metrics for Prometheus on 127.0.0.1 (0: off; api/metrics.py)

    env: Environment = Environment.DEVELOPMENT
    audience: str = "nhn:malestrom"
    helseid_issuer: str | None = None
    helseid_jwks: str | None = None  # an https:// URL or a path to a JWKS file
    citizen_issuer: str | None = None
    citizen_jwks: str | None = None
    public_url: str | None = None  # e.g. https://malestrom.example.no behind a proxy

    # Pages for people (api.web): the OpenID Connect logins the server runs for the browser.
    helseid_authority: str | None = None  # staff: HelseID (discovery under this URL)
    helseid_client_id: str | None = None
    helseid_client_key: str | None = None  # a private JWK file (private-key-JWT client auth)
    helseid_scopes: str = "openid profile nhn:malestrom/read nhn:malestrom/alerts"
    citizen_authority: str | None = None  # citizens: ID-porten / Helsenorge
    citizen_client_id: str | None = None
    citizen_client_key: str | None = None
    citizen_scopes: str = "openid nhn:malestrom/citizen"
    session_idle_minutes: int = 30
    session_absolute_minutes: int = 8 * 60

    @model_validator(mode="after")
    def _production_is_safe(self) -> ApiSettings:
        for issuer, jwks, name in (
            (self.helseid_issuer, self.helseid_jwks, "HELSEID"),
            (self.citizen_issuer, self.citizen_jwks, "CITIZEN"),
        ):
            if bool(issuer) != bool(jwks):
                raise ValueError(f"set both MALESTROM_{name}_ISSUER and MALESTROM_{name}_JWKS")
        if self.public_url and urlsplit(self.public_url).scheme not in ("http", "https"):
            raise ValueError("MALESTROM_PUBLIC_URL must be an http(s):// URL")
        if self.env is Environment.PRODUCTION:
            self._refuse_unsafe_production()
        return self

    def _refuse_unsafe_production(self) -> None:
        if not self.helseid_issuer or not self.citizen_issuer:
            raise ValueError(
                "production needs MALESTROM_HELSEID_ISSUER/_JWKS and MALESTROM_CITIZEN_ISSUER/_JWKS"
            )
        authorities = (self.helseid_authority or "", self.citizen_authority or "")
        if any(map(is_dev_issuer, (self.helseid_issuer, self.citizen_issuer, *authorities))):
            raise ValueError("the development issuer must not be trusted in production")
        if not self.public_url or urlsplit(self.public_url).scheme != "https":
            raise ValueError("production needs MALESTROM_PUBLIC_URL with an https:// URL")
        for jwks in (self.helseid_jwks, self.citizen_jwks):
            if jwks and jwks.startswith("http://"):
                raise ValueError("a JWKS URL must be https:// in production")
