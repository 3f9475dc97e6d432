-- Outgoing messages (transactional outbox), task reminders, and scheduled job runs.

-- Every message chatcrm sends on its own (a reminder, a digest, a notice, a reply pushed later) is
-- a row here, written in the transaction of the change that caused it; a dispatcher delivers it.
CREATE TABLE outbox (
    id               INTEGER PRIMARY KEY,
    org_id           INTEGER REFERENCES orgs(id),
    user_id          INTEGER REFERENCES users(id),
    kind             TEXT NOT NULL CHECK (kind IN ('reply', 'reminder', 'digest', 'notice')),
    platform         TEXT NOT NULL,
    app              TEXT NOT NULL,
    recipient        TEXT NOT NULL,
    body             TEXT NOT NULL,
    dedupe_key       TEXT NOT NULL UNIQUE,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'dead', 'dropped')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT NOT NULL,
    locked_until     TEXT,
    locked_by        TEXT,
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    sent_at          TEXT
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE status = 'pending';
CREATE INDEX outbox_status ON outbox (status, id);
-- Per-recipient rate limits count recent sends.
CREATE INDEX outbox_recipient_sent ON outbox (recipient, sent_at) WHERE status = 'sent';

-- A task's reminder: pending while remind_at is set and the task is open. Snoozing moves it,
-- completing clears it, firing clears it and stamps reminded_at (one transaction with the outbox row).
ALTER TABLE tasks ADD COLUMN remind_at TEXT;
-- The user chose this time: quiet hours do not hold it back.
ALTER TABLE tasks ADD COLUMN remind_exact INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN reminded_at TEXT;
CREATE INDEX tasks_remind ON tasks (remind_at) WHERE remind_at IS NOT NULL;

-- A cron job's run for one org and one scheduled time; the key makes it run once across instances.
CREATE TABLE job_runs (
    job            TEXT NOT NULL,
    org_id         INTEGER NOT NULL REFERENCES orgs(id),
    scheduled_for  TEXT NOT NULL,
    started_at     TEXT NOT NULL,
    instance       TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    PRIMARY KEY (job, org_id, scheduled_for)
);

-- A rule's follow-up task that was missed again is escalated once.
ALTER TABLE tasks ADD COLUMN escalated_at TEXT;
CREATE INDEX tasks_rule_open ON tasks (org_id, customer_id) WHERE status = 'open' AND origin = 'rule';

-- Pushes look up the chat identities of the user they are for.
CREATE INDEX chat_identities_user ON chat_identities (user_id);
