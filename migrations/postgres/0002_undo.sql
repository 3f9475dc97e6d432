-- Undo: an audit row whose change was reverted is marked, so the next undo goes one step further back.
ALTER TABLE audit_log ADD COLUMN undone BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX audit_actor ON audit_log (org_id, actor_id, id);
