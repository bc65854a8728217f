"""The resource server: HelseID and citizen access tokens bound to DPoP proofs (RFC 9449),
principals and their scopes, organisation and care-relationship rules, and the access log.

Errors (all `AuthError`, never a 5xx):

- `InvalidTokenError`: the access token fails a check → 401 ``error="invalid_token"``;
- `InvalidProofError`: the DPoP proof fails a check → 401 ``error="invalid_dpop_proof"``;
- `ForbiddenError`: a valid caller without the right → 403 (``insufficient_scope`` when a scope
  is missing).
"""
