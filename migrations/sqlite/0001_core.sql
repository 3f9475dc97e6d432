-- chatcrm core schema (SQLite). Timestamps are RFC 3339 UTC text written by sqlx; money is integer 分.
-- The PostgreSQL twin is migrations/postgres/0001_core.sql: keep both in step, never edit an applied file.

CREATE TABLE orgs (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    timezone    TEXT NOT NULL DEFAULT 'Asia/Shanghai',
    created_at  TEXT NOT NULL
);

CREATE TABLE teams (
    id          INTEGER PRIMARY KEY,
    org_id      INTEGER NOT NULL REFERENCES orgs(id),
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE users (
    id          INTEGER PRIMARY KEY,
    org_id      INTEGER NOT NULL REFERENCES orgs(id),
    handle      TEXT NOT NULL,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('rep', 'manager', 'admin')),
    team_id     INTEGER REFERENCES teams(id),
    active      INTEGER NOT NULL DEFAULT 1,
    created_at  TEXT NOT NULL,
    UNIQUE (org_id, handle)
);

CREATE TABLE chat_identities (
    id                INTEGER PRIMARY KEY,
    org_id            INTEGER NOT NULL REFERENCES orgs(id),
    platform          TEXT NOT NULL,
    corp_id           TEXT NOT NULL,
    platform_user_id  TEXT NOT NULL,
    user_id           INTEGER NOT NULL REFERENCES users(id),
    created_at        TEXT NOT NULL,
    UNIQUE (platform, corp_id, platform_user_id)
);

CREATE TABLE stages (
    id           INTEGER PRIMARY KEY,
    org_id       INTEGER NOT NULL REFERENCES orgs(id),
    key          TEXT NOT NULL,
    name_zh      TEXT NOT NULL,
    name_en      TEXT NOT NULL,
    probability  INTEGER NOT NULL CHECK (probability BETWEEN 0 AND 100),
    position     INTEGER NOT NULL,
    outcome      TEXT NOT NULL CHECK (outcome IN ('open', 'won', 'lost')),
    UNIQUE (org_id, key)
);

CREATE TABLE customers (
    id                 INTEGER PRIMARY KEY,
    org_id             INTEGER NOT NULL REFERENCES orgs(id),
    name               TEXT NOT NULL,
    name_norm          TEXT NOT NULL,
    name_pinyin        TEXT NOT NULL,
    name_initials      TEXT NOT NULL,
    industry           TEXT,
    region             TEXT,
    source             TEXT,
    grade              TEXT CHECK (grade IN ('A', 'B', 'C')),
    owner_id           INTEGER REFERENCES users(id),
    last_contacted_at  TEXT,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    UNIQUE (org_id, name_norm)
);
CREATE INDEX customers_owner ON customers (org_id, owner_id);

CREATE TABLE customer_tags (
    customer_id  INTEGER NOT NULL REFERENCES customers(id),
    tag          TEXT NOT NULL,
    PRIMARY KEY (customer_id, tag)
);

CREATE TABLE contacts (
    id           INTEGER PRIMARY KEY,
    org_id       INTEGER NOT NULL REFERENCES orgs(id),
    customer_id  INTEGER NOT NULL REFERENCES customers(id),
    name         TEXT NOT NULL,
    title        TEXT,
    phone        TEXT,
    wechat       TEXT,
    email        TEXT,
    created_at   TEXT NOT NULL
);
CREATE INDEX contacts_customer ON contacts (customer_id);

CREATE TABLE inbox (
    id           INTEGER PRIMARY KEY,
    org_id       INTEGER REFERENCES orgs(id),
    platform     TEXT NOT NULL,
    message_id   TEXT NOT NULL,
    sender       TEXT NOT NULL,
    user_id      INTEGER REFERENCES users(id),
    text         TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('done', 'rejected')),
    reply        TEXT NOT NULL,
    received_at  TEXT NOT NULL,
    UNIQUE (platform, message_id)
);

CREATE TABLE activities (
    id                 INTEGER PRIMARY KEY,
    org_id             INTEGER NOT NULL REFERENCES orgs(id),
    customer_id        INTEGER NOT NULL REFERENCES customers(id),
    user_id            INTEGER NOT NULL REFERENCES users(id),
    kind               TEXT NOT NULL CHECK (kind IN ('visit', 'call', 'wechat', 'email', 'meeting', 'note')),
    occurred_at        TEXT NOT NULL,
    content            TEXT NOT NULL,
    next_step          TEXT,
    location           TEXT,
    source_message_id  INTEGER REFERENCES inbox(id),
    created_at         TEXT NOT NULL
);
CREATE INDEX activities_customer ON activities (customer_id, occurred_at);
CREATE INDEX activities_user ON activities (org_id, user_id, occurred_at);

CREATE TABLE deals (
    id              INTEGER PRIMARY KEY,
    org_id          INTEGER NOT NULL REFERENCES orgs(id),
    customer_id     INTEGER NOT NULL REFERENCES customers(id),
    owner_id        INTEGER NOT NULL REFERENCES users(id),
    title           TEXT NOT NULL,
    amount_fen      INTEGER NOT NULL CHECK (amount_fen >= 0),
    currency        TEXT NOT NULL DEFAULT 'CNY',
    stage           TEXT NOT NULL,
    probability     INTEGER NOT NULL CHECK (probability BETWEEN 0 AND 100),
    expected_close  TEXT,
    status          TEXT NOT NULL CHECK (status IN ('open', 'won', 'lost')),
    lost_reason     TEXT,
    closed_at       TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX deals_owner ON deals (org_id, owner_id, status);

CREATE TABLE deal_stage_history (
    id          INTEGER PRIMARY KEY,
    org_id      INTEGER NOT NULL REFERENCES orgs(id),
    deal_id     INTEGER NOT NULL REFERENCES deals(id),
    from_stage  TEXT,
    to_stage    TEXT NOT NULL,
    moved_at    TEXT NOT NULL,
    moved_by    INTEGER REFERENCES users(id)
);
CREATE INDEX deal_stage_history_deal ON deal_stage_history (deal_id, moved_at);

CREATE TABLE leads (
    id            INTEGER PRIMARY KEY,
    org_id        INTEGER NOT NULL REFERENCES orgs(id),
    company       TEXT NOT NULL,
    company_norm  TEXT NOT NULL,
    contact_name  TEXT,
    phone         TEXT,
    phone_norm    TEXT,
    email         TEXT,
    source        TEXT,
    region        TEXT,
    industry      TEXT,
    status        TEXT NOT NULL CHECK (status IN ('new', 'assigned', 'contacted', 'qualified', 'converted', 'discarded', 'pool')),
    owner_id      INTEGER REFERENCES users(id),
    dedupe_key    TEXT NOT NULL,
    customer_id   INTEGER REFERENCES customers(id),
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX leads_dedupe ON leads (org_id, dedupe_key);
CREATE INDEX leads_owner ON leads (org_id, owner_id, status);

CREATE TABLE tasks (
    id            INTEGER PRIMARY KEY,
    org_id        INTEGER NOT NULL REFERENCES orgs(id),
    owner_id      INTEGER NOT NULL REFERENCES users(id),
    title         TEXT NOT NULL,
    due_at        TEXT NOT NULL,
    customer_id   INTEGER REFERENCES customers(id),
    deal_id       INTEGER REFERENCES deals(id),
    origin        TEXT NOT NULL CHECK (origin IN ('manual', 'activity', 'rule', 'lead')),
    status        TEXT NOT NULL CHECK (status IN ('open', 'done', 'cancelled')),
    completed_at  TEXT,
    created_at    TEXT NOT NULL
);
CREATE INDEX tasks_owner_due ON tasks (org_id, owner_id, status, due_at);

CREATE TABLE audit_log (
    id                 INTEGER PRIMARY KEY,
    org_id             INTEGER NOT NULL REFERENCES orgs(id),
    actor_id           INTEGER REFERENCES users(id),
    action             TEXT NOT NULL,
    entity             TEXT NOT NULL,
    entity_id          INTEGER NOT NULL,
    before             TEXT,
    after              TEXT,
    via                TEXT NOT NULL CHECK (via IN ('chat', 'api', 'cli', 'system')),
    source_message_id  INTEGER REFERENCES inbox(id),
    at                 TEXT NOT NULL
);
CREATE INDEX audit_entity ON audit_log (org_id, entity, entity_id);

-- Conversation state: the question the bot is waiting on ("which one? reply 1 or 2").
CREATE TABLE conversations (
    user_id     INTEGER PRIMARY KEY REFERENCES users(id),
    org_id      INTEGER NOT NULL REFERENCES orgs(id),
    pending     TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);

-- Messages pushed to a console user (reminders, notices); the console page polls them.
CREATE TABLE console_pushes (
    id          INTEGER PRIMARY KEY,
    org_id      INTEGER NOT NULL REFERENCES orgs(id),
    user_id     INTEGER NOT NULL REFERENCES users(id),
    text        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX console_pushes_user ON console_pushes (user_id, id);
