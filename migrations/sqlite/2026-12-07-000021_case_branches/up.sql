-- A case in conflict (docs/sync.md, "Conflicts and merges"): the other side wrote on a commit this
-- server has moved past. Its branch is kept here whole, beside this server's own chain of the case
-- (case_commits, records, case_keys), so neither version is lost: the commits after the last one
-- both sides share (fork_seq), every record its head lists, and every wrapped key it came with.
-- One branch per case; a merge commit that names both heads resolves it (merged_at is then set:
-- the branch's commits stay, since the merge names its head).
CREATE TABLE case_branches (
    case_id BLOB PRIMARY KEY REFERENCES cases(id),
    fork_seq BIGINT NOT NULL,
    head_seq BIGINT NOT NULL,
    head_hash BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    merged_at BIGINT
);
CREATE TABLE case_branch_commits (
    case_id BLOB NOT NULL REFERENCES case_branches(case_id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (case_id, seq)
);
CREATE TABLE case_branch_records (
    case_id BLOB NOT NULL REFERENCES case_branches(case_id) ON DELETE CASCADE,
    id BLOB NOT NULL,
    kind SMALLINT NOT NULL,
    version BIGINT NOT NULL,
    key_epoch INTEGER NOT NULL,
    author_id BLOB NOT NULL,
    envelope BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (case_id, id)
);
CREATE TABLE case_branch_keys (
    case_id BLOB NOT NULL REFERENCES case_branches(case_id) ON DELETE CASCADE,
    recipient_id BLOB NOT NULL,
    key_epoch INTEGER NOT NULL,
    escrow_gen INTEGER NOT NULL,
    wrapped BLOB NOT NULL,
    keys_digest BLOB,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (case_id, recipient_id, key_epoch)
);
