ALTER TABLE case_commits DROP COLUMN change_seq;
ALTER TABLE case_commits DROP COLUMN society_id;
