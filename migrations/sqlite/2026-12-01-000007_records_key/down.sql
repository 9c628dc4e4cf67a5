CREATE TABLE records_by_id (
    id BLOB PRIMARY KEY NOT NULL,
    case_id BLOB NOT NULL REFERENCES cases(id),
    kind SMALLINT NOT NULL,
    version BIGINT NOT NULL,
    key_epoch INTEGER NOT NULL,
    author_id BLOB NOT NULL,
    envelope BLOB NOT NULL,
    seq BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
INSERT INTO records_by_id (id, case_id, kind, version, key_epoch, author_id, envelope, seq,
                           created_at, updated_at)
    SELECT id, case_id, kind, version, key_epoch, author_id, envelope, seq, created_at, updated_at
    FROM records;
DROP TABLE records;
ALTER TABLE records_by_id RENAME TO records;
CREATE INDEX records_case ON records(case_id, id);
CREATE INDEX records_seq ON records(seq);
