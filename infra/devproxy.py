"""The development proxy: a plain FHIR client (fhirpy, fhirclient, curl) talks to it without
credentials, and it forwards each request to the API signed with DPoP by the development issuer.

Development only, on 127.0.0.1 only: `malestrom up` starts it (on the API's port + 1) when it
made the development issuer, and `malestrom dev-proxy` refuses to run in production or in the
production identity mode. Neither client library can make DPoP proofs; this is how they get in.

Who it signs as: a reading sent in (``POST /fhir``, ``POST /fhir/Observation``, ``POST
/ingest/…``) goes as the simulated organisation's hub (scope ``ingest``); everything else as a
nurse of the same organisation (``read``, ``alerts``, ``settings``), who therefore sees the
patients whose readings the hub sent. Any ``Authorization`` or ``DPoP`` header the client sends
is replaced. The client's ``Host`` is kept, so that the links and ``Location`` the API answers
point back at the proxy, and each proof's ``htu`` is the URL the API sees.

Only a loopback ``Host`` (``127.0.0.1``, ``localhost`` or ``[::1]`` with the proxy's port) is
served; any other is answered 403. Otherwise a web page on a name that resolves to 127.0.0.1
(DNS rebinding) could read everything through the proxy as the nurse.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from infra.devissuer import DevIssuer, RoleCredentials
from ingestion.outcomes import Issue
from ingestion.responses import outcome_response

__all__ = ["INGEST_ROLE", "create_dev_proxy", "loopback_hosts", "signing_role"]

INGEST_ROLE = "hub"
_INGEST_PATHS = frozenset({"/fhir", "/fhir/Observation"})
# Hop-by-hop headers (RFC 9110 § 7.6.1) and what the proxy sets itself.
_DROPPED = frozenset(
    {
        "authorization",
        "dpop",
        "connection",
        "keep-alive",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)

_HOP_BY_HOP = _DROPPED - {"authorization", "dpop", "content-length"}


def signing_role(method: str, path: str, *, read_role: str = "nurse") -> str:
    """The development role a request is signed as: the hub for readings sent in, else
    ``read_role``."""
    path = path.rstrip("/") or "/"
    sends = path in _INGEST_PATHS or path.startswith("/ingest/")
    return INGEST_ROLE if method.upper() == "POST" and sends else read_role


def loopback_hosts(port: int) -> frozenset[str]:
    """The ``Host`` values the proxy on ``port`` serves: its loopback addresses, nothing else."""
    return frozenset(f"{name}:{port}" for name in ("127.0.0.1", "localhost", "[::1]"))


def create_dev_proxy(
    upstream: str,
    issuer: DevIssuer,
    *,
    port: int,
    read_role: str = "nurse",
    public_url: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Starlette:
    """The proxy app, listening on ``port``, forwarding to ``upstream`` (the API's base URL);
    ``public_url`` is the API's ``MALESTROM_PUBLIC_URL`` when one is set (the proofs' ``htu``
    then starts with it); ``transport`` replaces the network (tests)."""
    credentials = {role: RoleCredentials(issuer, role) for role in {INGEST_ROLE, read_role}}
    hosts = loopback_hosts(port)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        timeout = httpx.Timeout(30.0, read=None)  # read=None: the alert stream stays open
        async with httpx.AsyncClient(timeout=timeout, transport=transport) as client:
            app.state.client = client
            yield

    async def forward(request: Request) -> Response:
        host = request.headers.get("host", "")  # forwarded as sent: the API's htu uses it
        if host.lower() not in hosts:
            return _foreign_host(port)
        raw = request.scope.get("raw_path") or request.url.path.encode()
        path = raw.decode("latin-1")
        signer = credentials[signing_role(request.method, request.url.path, read_role=read_role)]
        auth = signer.auth()
        seen_as = (public_url.rstrip("/") if public_url else f"http://{host}") + path
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _DROPPED]
        if "accept-encoding" not in request.headers:  # else httpx would ask for gzip itself
            headers.append(("accept-encoding", "identity"))
        proof = auth.proof(request.method, seen_as)
        headers += [("authorization", f"DPoP {auth.token}"), ("dpop", proof)]
        query = request.url.query
        client: httpx.AsyncClient = request.app.state.client
        sent = client.build_request(
            request.method,
            httpx.URL(upstream.rstrip("/") + path + (f"?{query}" if query else "")),
            headers=headers,
            content=await request.body(),
        )
        answer = await client.send(sent, stream=True)
        kept = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP}
        return StreamingResponse(
            answer.aiter_raw(),
            status_code=answer.status_code,
            headers=kept,
            background=BackgroundTask(answer.aclose),
        )

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    return Starlette(routes=[Route("/{path:path}", forward, methods=methods)], lifespan=lifespan)


def _foreign_host(port: int) -> Response:
    """403 for a request whose ``Host`` is not the proxy's loopback address."""
    diagnostics = (
        f"the development proxy serves only Host 127.0.0.1:{port}, localhost:{port} or "
        f"[::1]:{port}; use one of those addresses"
    )
    return outcome_response(403, [Issue("error", "forbidden", diagnostics, "Host")])
