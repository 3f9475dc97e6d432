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

CREATE INDEX activities_period ON activities (org_id, occurred_at);
CREATE INDEX deal_stage_history_period ON deal_stage_history (org_id, moved_at);
CREATE INDEX deals_close ON deals (org_id, status, expected_close);
CREATE INDEX customers_created ON customers (org_id, created_at);
CREATE INDEX leads_created ON leads (org_id, created_at);
CREATE INDEX tasks_due ON tasks (org_id, status, due_at);
