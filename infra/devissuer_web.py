"""The development issuer as an OpenID Connect provider, served by the API process under
``/dev/issuer/…`` so that the pages log in through the same flow as with HelseID and ID-porten:
discovery, pushed authorization requests (PAR, required), an authorize page where one picks a
synthetic person, role and organisation, and a token endpoint that checks the client assertion,
PKCE S256 and the DPoP proof and issues DPoP-bound tokens (`DevIssuer.mint`).

Only for development: `infra.cli` mounts it when no real issuer is configured, and the API
refuses the development issuer in production. State lives in this process's memory.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from html import escape
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from api.auth.dpop import normalise_htu
from api.auth.errors import InvalidProofError, InvalidTokenError
from api.auth.jose import open_compact, verify
from infra.devissuer import SIMULATED_HOSPITAL, SIMULATED_ORGANISATION, WEB_CLIENT_ID, DevIssuer

__all__ = ["dev_issuer_router"]

_TTL_S = 90
_ROLES = {
    "nurse": "Sykepleier (hjemmetjeneste)",
    "clinician": "Lege (sykehus, behandlingsrelasjon)",
    "citizen": "Innbygger",
}


@dataclass
class _State:
    """Pushed requests and issued codes, each with its expiry (monotonic seconds)."""

    requests: dict[str, tuple[float, dict[str, str]]] = field(default_factory=dict)
    codes: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)

    def take(self, table: dict[str, tuple[float, Any]], key: str) -> Any:
        found = table.pop(key, None)
        return found[1] if found and found[0] > time.monotonic() else None


def _error(code: str, description: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": code, "error_description": description}, status_code=status)


def dev_issuer_router(issuer: DevIssuer) -> APIRouter:
    """The provider's routes for ``issuer`` (its identifier names where they are served)."""
    router = APIRouter(prefix="/dev/issuer", include_in_schema=False)
    state = _State()
    base = issuer.issuer.rstrip("/")
    client_key = issuer.client_key()

    @router.get("/.well-known/openid-configuration")
    async def discovery() -> dict[str, Any]:
        return {
            "issuer": base,
            "authorization_endpoint": f"{base}/authorize",
            "pushed_authorization_request_endpoint": f"{base}/par",
            "require_pushed_authorization_requests": True,
            "token_endpoint": f"{base}/token",
            "jwks_uri": f"{base}/jwks",
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "dpop_signing_alg_values_supported": ["ES256"],
            "id_token_signing_alg_values_supported": ["ES256"],
        }

    @router.get("/jwks")
    async def jwks() -> dict[str, Any]:
        return dict(KeySet([issuer.key]).as_dict(private=False))

    @router.post("/par")
    async def par(request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        if not _client_ok(form, client_key, base):
            return _error("invalid_client", "the client assertion does not verify", 401)
        if form.get("response_type") != "code" or form.get("code_challenge_method") != "S256":
            return _error("invalid_request", "response_type=code and PKCE S256 are required")
        if not form.get("code_challenge") or not form.get("redirect_uri") or not form.get("state"):
            return _error("invalid_request", "code_challenge, redirect_uri and state are required")
        request_uri = f"urn:ietf:params:oauth:request_uri:{secrets.token_urlsafe(24)}"
        state.requests[request_uri] = (time.monotonic() + _TTL_S, form)
        return JSONResponse({"request_uri": request_uri, "expires_in": _TTL_S}, status_code=201)

    @router.get("/authorize")
    async def authorize(request_uri: str = "", client_id: str = "") -> Response:
        found = state.requests.get(request_uri)
        if not found or found[0] < time.monotonic() or found[1]["client_id"] != client_id:
            return HTMLResponse(_page("<p>Innloggingen er utløpt. Start på nytt.</p>"), 400)
        pushed = found[1]
        if pushed.get("dev_role"):  # /dev/login: the person was chosen already
            state.requests.pop(request_uri)
            return _approve(
                pushed, pushed["dev_role"], pushed.get("dev_org"), pushed.get("dev_pid")
            )
        citizen = "nhn:malestrom/citizen" in pushed.get("scope", "").split()
        return HTMLResponse(_picker(request_uri, citizen))

    @router.post("/authorize")
    async def approve(
        request_uri: str = Form(), role: str = Form(), org: str = Form(""), pid: str = Form("")
    ) -> Response:
        pushed = state.take(state.requests, request_uri)
        if pushed is None or role not in _ROLES:
            return HTMLResponse(_page("<p>Innloggingen er utløpt. Start på nytt.</p>"), 400)
        return _approve(pushed, role, org or None, pid or None)

    def _approve(pushed: dict[str, str], role: str, org: str | None, pid: str | None) -> Response:
        code = secrets.token_urlsafe(24)
        state.codes[code] = (
            time.monotonic() + 60,
            {"pushed": pushed, "role": role, "org": org, "pid": pid},
        )
        query = urlencode({"code": code, "state": pushed["state"], "iss": base})
        return RedirectResponse(f"{pushed['redirect_uri']}?{query}", status_code=303)

    @router.post("/token")
    async def token(request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        if not _client_ok(form, client_key, base):
            return _error("invalid_client", "the client assertion does not verify", 401)
        grant = state.take(state.codes, form.get("code", ""))
        if grant is None or form.get("grant_type") != "authorization_code":
            return _error("invalid_grant", "unknown, used or expired code")
        pushed = grant["pushed"]
        if form.get("redirect_uri") != pushed["redirect_uri"] or not _pkce_ok(form, pushed):
            return _error("invalid_grant", "redirect_uri or code_verifier does not match")
        jkt = _proof_key(request.headers.get("dpop"), f"{base}/token")
        if jkt is None or jkt != pushed.get("dpop_jkt", jkt):
            return _error("invalid_dpop_proof", "a valid DPoP proof of the bound key is required")
        role, org, pid = grant["role"], grant["org"], grant["pid"]
        if role == "clinician":
            org = org or SIMULATED_HOSPITAL
        minted = issuer.mint(
            role,
            org=org or (SIMULATED_ORGANISATION if role != "citizen" else None),
            pid=pid,
            lifetime_s=3600,
            extra={"cnf": {"jkt": jkt}},
        )
        now = int(time.time())
        id_claims = {
            "iss": base,
            "aud": pushed["client_id"],
            "sub": minted.claims.get("sub"),
            "nonce": pushed.get("nonce"),
            "iat": now,
            "exp": now + 300,
        }
        id_token = jwt.encode({"alg": "ES256", "kid": issuer.key.kid}, id_claims, issuer.key)
        return JSONResponse(
            {
                "access_token": minted.token,
                "token_type": "DPoP",
                "expires_in": 3600,
                "id_token": id_token,
                "scope": minted.claims["scope"],
            },
            headers={"Cache-Control": "no-store"},
        )

    return router


def _client_ok(form: dict[str, str], key: ECKey, audience: str) -> bool:
    """private_key_jwt: signed by the client's key, for this issuer, not expired."""
    if form.get("client_id") != WEB_CLIENT_ID or "client_assertion" not in form:
        return False
    try:
        opened = open_compact(
            form["client_assertion"], what="client assertion", error=InvalidTokenError
        )
        verify(opened, key, what="client assertion", error=InvalidTokenError)
    except InvalidTokenError:
        return False
    claims = opened.claims
    return (
        claims.get("iss") == claims.get("sub") == WEB_CLIENT_ID
        and claims.get("aud") in (audience, [audience])
        and isinstance(claims.get("exp"), int)
        and claims["exp"] > time.time()
    )


def _pkce_ok(form: dict[str, str], pushed: dict[str, str]) -> bool:
    digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return bool(form.get("code_verifier")) and secrets.compare_digest(
        challenge, pushed["code_challenge"]
    )


def _proof_key(proof: str | None, url: str) -> str | None:
    """The thumbprint of a valid token-request proof's key, or None."""
    if not proof:
        return None
    try:
        opened = open_compact(proof, what="DPoP proof", error=InvalidProofError)
        key = ECKey.import_key(opened.header["jwk"])
        verify(opened, key, what="DPoP proof", error=InvalidProofError)
    except (InvalidProofError, KeyError, ValueError):
        return None
    claims = opened.claims
    fresh = isinstance(claims.get("iat"), int) and abs(time.time() - claims["iat"]) < 60
    if opened.header.get("typ") != "dpop+jwt" or claims.get("htm") != "POST" or not fresh:
        return None
    if normalise_htu(str(claims.get("htu", ""))) != normalise_htu(url):
        return None
    return key.thumbprint()


def _picker(request_uri: str, citizen: bool) -> str:
    roles = ["citizen"] if citizen else ["nurse", "clinician"]
    options = "".join(f'<option value="{r}">{escape(_ROLES[r])}</option>' for r in roles)
    person = (
        '<label for="pid">Fødselsnummer (syntetisk)</label><input id="pid" name="pid" required '
        'inputmode="numeric" autocomplete="off" pattern="[0-9]{11}">'
        if citizen
        else '<label for="org">Organisasjonsnummer</label>'
        f'<input id="org" name="org" value="{SIMULATED_ORGANISATION}" inputmode="numeric" '
        'pattern="[0-9]{9}" autocomplete="off">'
    )
    return _page(
        "<p>Dette er den lokale utviklingsutstederen. Velg en syntetisk person.</p>"
        '<form method="post" action="authorize">'
        f'<input type="hidden" name="request_uri" value="{escape(request_uri)}">'
        f'<label for="role">Rolle</label><select id="role" name="role">{options}</select>'
        f'{person}<button type="submit">Logg inn</button></form>'
    )


def _page(body: str) -> str:
    return (
        '<!doctype html><html lang="nb"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Logg inn – utviklingsutsteder</title>"
        "<style>body{font:1.05rem/1.5 system-ui,sans-serif;max-width:32rem;margin:2rem auto;"
        "padding:0 1rem;color:#1a1a1a}label{display:block;margin-top:1rem;font-weight:600}"
        "input,select{font:inherit;padding:.4rem;width:100%;box-sizing:border-box}"
        "button{margin-top:1.5rem;font:inherit;padding:.5rem 1.2rem;background:#0b4f8a;color:#fff;"
        "border:0;border-radius:4px}"
        "button:focus,input:focus,select:focus{outline:3px solid #c45500;"
        "outline-offset:2px}</style></head><body><main>"
        f"<h1>Logg inn (utvikling)</h1>{body}</main></body></html>"
    )
