-- A case in conflict (docs/sync.md, "Conflicts and merges"): the other side wrote on a commit this
-- server has moved past. Its branch is kept here whole, beside this server's own chain of the case
-- (case_commits, records, case_keys), so neither version is lost: the commits after the last one
-- both sides share (fork_seq), every record its head lists, and every wrapped key it came with.
-- One branch per case; a merge commit that names both heads resolves it (merged_at is then set:
-- the branch's commits stay, since the merge names its head).
CREATE TABLE case_branches (
    case_id BYTEA PRIMARY KEY REFERENCES cases(id),
    fork_seq BIGINT NOT NULL,
    head_seq BIGINT NOT NULL,
    head_hash BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    merged_at BIGINT
);
CREATE TABLE case_branch_commits (
    case_id BYTEA NOT NULL REFERENCES case_branches(case_id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    body BYTEA NOT NULL,
    PRIMARY KEY (case_id, seq)
);
CREATE TABLE case_branch_records (
    case_id BYTEA NOT NULL REFERENCES case_branches(case_id) ON DELETE CASCADE,
    id BYTEA NOT NULL,
    kind SMALLINT NOT NULL,
    version BIGINT NOT NULL,
    key_epoch INTEGER NOT NULL,
    author_id BYTEA NOT NULL,
    envelope BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (case_id, id)
);
CREATE TABLE case_branch_keys (
    case_id BYTEA NOT NULL REFERENCES case_branches(case_id) ON DELETE CASCADE,
    recipient_id BYTEA NOT NULL,
    key_epoch INTEGER NOT NULL,
    escrow_gen INTEGER NOT NULL,
    wrapped BYTEA NOT NULL,
    keys_digest BYTEA,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (case_id, recipient_id, key_epoch)
);
