-- The JSON API (/api/v1): per-org bearer tokens and stored responses for Idempotency-Key.

-- Only a SHA-256 hash of a token is kept; `prefix` (its first characters) identifies it in
-- listings. `scope`: 'full' (every endpoint) or 'intake' (POST /api/v1/leads only).
CREATE TABLE api_tokens (
    id          INTEGER PRIMARY KEY,
    org_id      INTEGER NOT NULL REFERENCES orgs(id),
    name        TEXT NOT NULL,
    prefix      TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    scope       TEXT NOT NULL DEFAULT 'full' CHECK (scope IN ('full', 'intake')),
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE INDEX api_tokens_org ON api_tokens (org_id, id);

-- One row per (org, Idempotency-Key): the hash of the request body and the response sent, so a
-- retry gets the same answer and nothing is done twice.
CREATE TABLE api_idempotency (
    id            INTEGER PRIMARY KEY,
    org_id        INTEGER NOT NULL REFERENCES orgs(id),
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    status        INTEGER NOT NULL,
    response      TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    UNIQUE (org_id, key)
);
