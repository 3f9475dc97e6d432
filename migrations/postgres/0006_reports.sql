-- Reports: monthly sales targets, when leads were contacted and converted, pushed images, and the
-- indexes the digest and funnel queries read through.

-- A rep's target for one calendar month (org time zone), in 分.
CREATE TABLE sales_targets (
    org_id      BIGINT NOT NULL REFERENCES orgs(id),
    user_id     BIGINT NOT NULL REFERENCES users(id),
    -- 'YYYY-MM'
    month       TEXT NOT NULL,
    amount_fen  BIGINT NOT NULL CHECK (amount_fen >= 0),
    set_by      BIGINT REFERENCES users(id),
    set_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, user_id, month)
);

ALTER TABLE leads ADD COLUMN contacted_at TIMESTAMPTZ;
ALTER TABLE leads ADD COLUMN converted_at TIMESTAMPTZ;

-- A picture pushed to a console user (the funnel chart), PNG bytes.
ALTER TABLE console_pushes ADD COLUMN image BYTEA;

-- When the deal entered its current stage (stuck-deal lists read it without walking the history).
ALTER TABLE deals ADD COLUMN stage_entered_at TIMESTAMPTZ;
UPDATE deals SET stage_entered_at = COALESCE(
    (SELECT MAX(h.moved_at) FROM deal_stage_history h WHERE h.deal_id = deals.id AND h.to_stage = deals.stage),
    created_at);

CREATE INDEX activities_period ON activities (org_id, occurred_at);
-- The funnel's cohort (deals that moved in the window) from the index alone.
CREATE INDEX deal_stage_history_period ON deal_stage_history (org_id, moved_at, deal_id);
CREATE INDEX deals_close ON deals (org_id, status, expected_close);
-- Won and lost in a period; the open pipeline per stage from the index alone.
CREATE INDEX deals_closed ON deals (org_id, status, closed_at);
CREATE INDEX deals_open_stage ON deals (org_id, status, stage, owner_id, amount_fen, probability);
CREATE INDEX deals_stage_entered ON deals (org_id, status, stage, stage_entered_at);
-- A team's deals by owner, status and stage (supersedes deals_owner of 0001).
DROP INDEX deals_owner;
CREATE INDEX deals_owner_stage ON deals (org_id, owner_id, status, stage, stage_entered_at);
CREATE INDEX customers_created ON customers (org_id, created_at);
-- Quiet customers of a grade, the quietest first: org-wide and per owner.
CREATE INDEX customers_quiet ON customers (org_id, grade, (COALESCE(last_contacted_at, created_at)));
CREATE INDEX customers_owner_quiet ON customers (org_id, owner_id, grade, (COALESCE(last_contacted_at, created_at)));
CREATE INDEX leads_created ON leads (org_id, created_at);
CREATE INDEX leads_assigned ON leads (org_id, assigned_at);
CREATE INDEX leads_contacted ON leads (org_id, contacted_at);
CREATE INDEX leads_converted ON leads (org_id, converted_at);
CREATE INDEX tasks_due ON tasks (org_id, status, due_at);
