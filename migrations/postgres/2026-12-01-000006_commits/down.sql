DROP INDEX records_case;
CREATE INDEX records_case ON records(case_id);
ALTER TABLE cases DROP COLUMN head_hash;
DROP TABLE case_commits;
