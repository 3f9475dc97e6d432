-- Lead assignment rules, reps on leave, and what a lead's assignment and SLA clock need.

-- Ordered rules: the first whose conditions all hold (empty = any) and whose target has someone
-- available assigns the lead; none → the public pool.
CREATE TABLE lead_rules (
    id              INTEGER PRIMARY KEY,
    org_id          INTEGER NOT NULL REFERENCES orgs(id),
    name            TEXT NOT NULL,
    position        INTEGER NOT NULL,
    -- "青岛" covers "青岛市南区".
    region_prefix   TEXT,
    industry        TEXT,
    source          TEXT,
    tag             TEXT,
    target_user_id  INTEGER REFERENCES users(id),
    target_team_id  INTEGER REFERENCES teams(id),
    strategy        TEXT NOT NULL CHECK (strategy IN ('round_robin', 'least_loaded')),
    -- Most open leads a rep may hold under this rule; NULL = no limit.
    capacity        INTEGER,
    -- Round robin: the user id that got the last lead.
    rr_cursor       INTEGER NOT NULL DEFAULT 0,
    active          INTEGER NOT NULL DEFAULT 1,
    created_at      TEXT NOT NULL,
    UNIQUE (org_id, name),
    CHECK ((target_user_id IS NULL) <> (target_team_id IS NULL))
);
CREATE INDEX lead_rules_org ON lead_rules (org_id, position);

ALTER TABLE users ADD COLUMN on_leave INTEGER NOT NULL DEFAULT 0;

-- Comma-separated tags from the intake (conditions of rules).
ALTER TABLE leads ADD COLUMN tags TEXT NOT NULL DEFAULT '';
-- Why the lead has its owner, in one line: the rule, manual, claimed, recycled.
ALTER TABLE leads ADD COLUMN assign_reason TEXT;
ALTER TABLE leads ADD COLUMN assigned_at TEXT;
-- SLA clock: 0 running, 1 owner reminded, 2 manager told, 3 returned to the pool.
ALTER TABLE leads ADD COLUMN sla_stage INTEGER NOT NULL DEFAULT 0;
CREATE INDEX leads_sla ON leads (org_id, status, assigned_at);
-- Intake looks for open leads by phone or by company.
CREATE INDEX leads_phone ON leads (org_id, phone_norm);
CREATE INDEX leads_company ON leads (org_id, company_norm);
