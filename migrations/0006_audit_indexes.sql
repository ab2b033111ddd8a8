-- The audit trail's documented questions, each answered from an index rather than a scan
-- of the whole trail (issue 13: 130-380 ms at 857k records, holding up pushes meanwhile):
-- who signed a digest (audit_by_digest, 0001), what an account did (actor, then action),
-- what one action did across repositories, what was refused (outcome), what happened in a
-- repository. Each ends with seq: results come in seq order, so the index is walked in
-- that order and a page stops at its limit.
CREATE INDEX audit_by_actor ON audit_log (actor, action, seq);
CREATE INDEX audit_by_action ON audit_log (action, seq);
CREATE INDEX audit_by_outcome ON audit_log (outcome, seq);
CREATE INDEX audit_by_repository ON audit_log (repository, seq);
