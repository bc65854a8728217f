"""One place where compact JWS values are opened and verified (joserfc), with our limits.

joserfc's defaults need three changes here: its 512-byte header limit rejects DPoP proofs that
carry an RSA-2048 key; its default algorithms admit HS256; and it checks no claim by itself
(``exp`` included), so `api.auth.tokens` and `api.auth.dpop` validate every claim explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import Key

from api.auth.errors import ALGORITHMS, AuthError

__all__ = ["MAX_JWT_BYTES", "Opened", "open_compact", "verify"]

MAX_JWT_BYTES = 16 * 1024
_REGISTRY = jws.JWSRegistry(algorithms=list(ALGORITHMS))
_REGISTRY.max_header_length = 4096  # room for an RSA-4096 public key in a proof's ``jwk``
_REGISTRY.max_payload_length = 12 * 1024
_REGISTRY.max_signature_length = 1024


@dataclass(frozen=True, slots=True)
class Opened:
    """A compact JWS opened but not yet verified: its header and claims."""

    compact: Any
    header: dict[str, Any]
    claims: dict[str, Any]


def open_compact(value: str, *, what: str, error: type[AuthError]) -> Opened:
    """Split and parse a compact JWS with an asymmetric ``alg`` and a JSON object payload.

    Raises:
        AuthError: of type ``error``, saying what is wrong (never echoing the value).
    """
    if len(value) > MAX_JWT_BYTES:
        raise error(f"the {what} is longer than {MAX_JWT_BYTES} bytes")
    if value.count(".") != 2:
        raise error(f"the {what} is not a compact JWS (three dot-separated parts)")
    try:
        compact = jws.extract_compact(value.encode("ascii"), None, _REGISTRY)
        header = dict(compact.headers())
        claims = orjson.loads(compact.payload)
    except (JoseError, ValueError, UnicodeError, TypeError) as exc:
        raise error(f"the {what} cannot be parsed ({type(exc).__name__})") from exc
    if not isinstance(claims, dict):
        raise error(f"the {what}'s payload is not a JSON object")
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise error(f"the {what}'s alg {alg!r} is not allowed; use one of {', '.join(ALGORITHMS)}")
    return Opened(compact, header, claims)


def verify(opened: Opened, key: Key, *, what: str, error: type[AuthError]) -> None:
    """Check the signature of an opened JWS with ``key``.

    Raises:
        AuthError: of type ``error`` when the signature does not verify with that key.
    """
    try:
        valid = jws.validate_compact(opened.compact, key, registry=_REGISTRY)
    except (JoseError, ValueError, TypeError) as exc:
        raise error(f"the {what}'s signature cannot be checked ({type(exc).__name__})") from exc
    if not valid:
        raise error(f"the {what}'s signature is not valid")
