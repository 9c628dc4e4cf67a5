-- A sync reader's page is the cases of one society changed after its cursor, in the order of their
-- last change (docs/sync.md, "Pull"): one range read of (society_id, seq). Sequence numbers are
-- per society since 000016, so an index on seq alone orders nothing anyone asks for, and one on
-- society_id alone is the composite's prefix: both go, and a write maintains one index fewer.
DROP INDEX cases_seq;
DROP INDEX cases_society;
CREATE INDEX cases_society_seq ON cases(society_id, seq);
