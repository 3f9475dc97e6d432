-- Undo: an audit row whose change was reverted is marked, so the next undo goes one step further back.
ALTER TABLE audit_log ADD COLUMN undone INTEGER NOT NULL DEFAULT 0;
CREATE INDEX audit_actor ON audit_log (org_id, actor_id, id);
