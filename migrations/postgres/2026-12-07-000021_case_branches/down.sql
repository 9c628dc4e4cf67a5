DROP TABLE case_branch_keys;
DROP TABLE case_branch_records;
DROP TABLE case_branch_commits;
DROP TABLE case_branches;
