-- Pages for people: server-side login sessions. The browser holds only a random session id in
-- an HttpOnly cookie; its SHA-256 is the key here, so the database never holds the cookie.
-- The access token and the DPoP key it is bound to stay on the server.
-- depends: 0012_access_control

CREATE TABLE web_sessions (
    id_digest    bytea PRIMARY KEY,        -- SHA-256 of the cookie value
    provider     text NOT NULL CHECK (provider IN ('staff', 'citizen')),
    access_token text NOT NULL,
    dpop_key     jsonb NOT NULL,           -- the server's private key for this session's token
    csrf         text NOT NULL,            -- the synchronizer token of its forms
    created_at   timestamptz NOT NULL,
    last_seen    timestamptz NOT NULL,     -- for the idle timeout
    expires_at   timestamptz NOT NULL      -- absolute: never later than the token's exp
);
CREATE INDEX web_sessions_expires ON web_sessions (expires_at);

-- A login under way: from the pushed authorization request to the callback (minutes at most).
CREATE TABLE web_logins (
    state_digest  bytea PRIMARY KEY,       -- SHA-256 of the OAuth state
    provider      text NOT NULL CHECK (provider IN ('staff', 'citizen')),
    code_verifier text NOT NULL,           -- PKCE (RFC 7636)
    nonce         text NOT NULL,
    dpop_key      jsonb NOT NULL,
    return_to     text NOT NULL,
    created_at    timestamptz NOT NULL
);
