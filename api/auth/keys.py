"""Issuers' signing keys: a JWKS from an ``https://`` URL or a file, cached.

An unknown ``kid`` makes the source look again (a key rotation), but never more than once a
minute, so a stream of forged ``kid`` values cannot make us hammer the issuer.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from joserfc.errors import JoseError
from joserfc.jwk import Key, KeySet

from api.auth.errors import InvalidTokenError

__all__ = ["JwksSource"]

REFRESH_INTERVAL_S = 60.0


class JwksSource:
    """The public keys of one issuer, from ``location`` (an https URL or a file path)."""

    def __init__(self, location: str, *, timeout_s: float = 5.0) -> None:
        self.location = location
        self._timeout_s = timeout_s
        self._keys: KeySet | None = None
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None) -> Key:
        """The key for ``kid`` (the only key when there is one and no ``kid`` is given).

        Raises:
            InvalidTokenError: no such key, even after looking again.
        """
        if self._keys is None or not self._has(kid):
            await self._refresh()
        if self._keys is None or not self._has(kid):
            raise InvalidTokenError(f"no key of the issuer has kid {kid!r}")
        return self._keys.get_by_kid(kid)

    def _has(self, kid: str | None) -> bool:
        assert self._keys is not None
        if kid is None:
            return len(self._keys.keys) == 1
        return any(k.kid == kid for k in self._keys.keys)

    async def _refresh(self) -> None:
        async with self._lock:
            if time.monotonic() - self._loaded_at < REFRESH_INTERVAL_S:
                return
            self._loaded_at = time.monotonic()
            try:
                document = await self._fetch()
                keys = KeySet.import_key_set(document)
            except (OSError, httpx.HTTPError, ValueError, JoseError, TypeError) as exc:
                if self._keys is None:
                    raise InvalidTokenError(
                        f"the issuer's keys could not be loaded ({type(exc).__name__})"
                    ) from exc
                return  # keep the keys we had; the next refresh may succeed
            self._keys = keys

    async def _fetch(self) -> Any:
        if self.location.startswith(("https://", "http://")):
            async with httpx.AsyncClient(timeout=self._timeout_s) as client:
                response = await client.get(self.location)
                response.raise_for_status()
                return response.json()
        return orjson.loads(await asyncio.to_thread(Path(self.location).read_bytes))
