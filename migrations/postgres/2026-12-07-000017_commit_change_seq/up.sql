-- Where each commit sits in its society's change sequence: the society it was written in, and the
-- number of the write that made it. A sync reader asks for "the commits of society S written after
-- N" (docs/sync.md, "Pull"). A case that moves to another society (a transfer) goes on in that
-- society's sequence, so the pair, not the number alone, places a commit.
-- Commits stored before take their case's current society and number: a reader from an older
-- cursor then gets them again, which is harmless (a known commit is a no-op), and never misses one.
ALTER TABLE case_commits ADD COLUMN society_id BYTEA NOT NULL DEFAULT ''::bytea;
ALTER TABLE case_commits ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
UPDATE case_commits SET
    society_id = (SELECT society_id FROM cases WHERE cases.id = case_commits.case_id),
    change_seq = (SELECT seq FROM cases WHERE cases.id = case_commits.case_id);
ALTER TABLE case_commits ALTER COLUMN society_id DROP DEFAULT, ALTER COLUMN change_seq DROP DEFAULT;
