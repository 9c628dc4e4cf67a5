-- Format 2: every write to a case is one signed commit; a case is the chain of its commits, and the
-- head commit lists the case's complete current state. Format 1 data is not migrated (nothing deployed
-- holds any): a case without commits (head_hash NULL) is refused by clients with a clear error.
CREATE TABLE case_commits (
    case_id BLOB NOT NULL REFERENCES cases(id),
    seq BIGINT NOT NULL,
    body BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (case_id, seq)
);
-- cases.version is the head commit's number; head_hash its SHA-256.
ALTER TABLE cases ADD COLUMN head_hash BLOB;
-- Records are served in record-id order, the order a head commit fixes.
DROP INDEX records_case;
CREATE INDEX records_case ON records(case_id, id);
