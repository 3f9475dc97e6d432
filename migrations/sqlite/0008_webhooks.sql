-- Outbound webhooks: subscribers per org and the log of every delivery attempt.

-- The secret signs deliveries (HMAC-SHA256), so it is kept as given, not hashed.
CREATE TABLE webhook_subscriptions (
    id          INTEGER PRIMARY KEY,
    org_id      INTEGER NOT NULL REFERENCES orgs(id),
    url         TEXT NOT NULL,
    secret      TEXT NOT NULL,
    -- Comma-separated event types, or `*`.
    events      TEXT NOT NULL,
    active      INTEGER NOT NULL DEFAULT 1,
    created_at  TEXT NOT NULL
);
CREATE INDEX webhook_subscriptions_org ON webhook_subscriptions (org_id) WHERE active = 1;

-- One row per attempt. Rows of queued deliveries go with their outbox row when it is pruned.
CREATE TABLE webhook_deliveries (
    id               INTEGER PRIMARY KEY,
    subscription_id  INTEGER NOT NULL REFERENCES webhook_subscriptions(id) ON DELETE CASCADE,
    outbox_id        INTEGER REFERENCES outbox(id) ON DELETE CASCADE,
    event_id         TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    status_code      INTEGER,
    error            TEXT,
    duration_ms      INTEGER NOT NULL,
    at               TEXT NOT NULL
);
CREATE INDEX webhook_deliveries_sub ON webhook_deliveries (subscription_id, id);
CREATE INDEX webhook_deliveries_outbox ON webhook_deliveries (outbox_id);
CREATE INDEX webhook_deliveries_at ON webhook_deliveries (at) WHERE outbox_id IS NULL;
