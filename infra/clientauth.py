"""DPoP for the common Python FHIR clients, for those who want the real flow instead of the
development proxy (`infra.devproxy`): each request gets ``Authorization: DPoP <token>`` and a
fresh proof, from the development issuer's tokens.

::

    hub = development_credentials("hub")
    fhirpy.SyncFHIRClient(URL, requests_config={"auth": RequestsDpopAuth(hub)})
    fhirpy.AsyncFHIRClient(URL, aiohttp_config={"middlewares": (aiohttp_dpop(hub),)})
    smart = fhirclient.client.FHIRClient(settings={"app_id": "me", "api_base": URL})
    smart.server.session.auth = RequestsDpopAuth(development_credentials("nurse"))

Needs ``requests`` (and ``aiohttp`` for the middleware), which the clients bring.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

from infra.devissuer import RoleCredentials, find_dev_issuer

__all__ = ["RequestsDpopAuth", "aiohttp_dpop", "development_credentials"]


def development_credentials(
    role: str, *, data_dir: str | Path | None = None, **mint: Any
) -> RoleCredentials:
    """Tokens of a role (``hub``, ``nurse``, ``clinician``, ``citizen`` with ``pid=…``,
    ``admin``) from the development issuer `malestrom up` made in ``data_dir`` (its default
    when None; `find_dev_issuer`)."""
    return RoleCredentials(find_dev_issuer(Path(data_dir) if data_dir else None), role, **mint)


class RequestsDpopAuth(requests.auth.AuthBase):
    """A ``requests`` auth (fhirclient's session, fhirpy's SyncFHIRClient): the token and a
    proof for the request's method and URL, on every request."""

    def __init__(self, credentials: RoleCredentials) -> None:
        self._credentials = credentials

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        """Sign one request (requests calls this as it sends it)."""
        auth = self._credentials.auth()
        request.headers["Authorization"] = f"DPoP {auth.token}"
        request.headers["DPoP"] = auth.proof(str(request.method), str(request.url))
        return request


def aiohttp_dpop(credentials: RoleCredentials) -> Any:
    """An aiohttp client middleware (fhirpy's AsyncFHIRClient) that signs every request."""
    from aiohttp import ClientHandlerType, ClientRequest, ClientResponse

    async def sign(request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        auth = credentials.auth()
        request.headers["Authorization"] = f"DPoP {auth.token}"
        request.headers["DPoP"] = auth.proof(request.method, str(request.url))
        return await handler(request)

    return sign
