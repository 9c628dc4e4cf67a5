-- A record is keyed by (case_id, id): its envelope binds it to its case, and every query names the
-- case. The separate unique index on the record id alone is gone: imported record ids are random, so
-- that index put each of a case's ~5 records on a different leaf page, the largest share of the pages
-- an import batch dirties. The primary key replaces records_case (same columns, same order). SQLite
-- cannot change a primary key in place: the table is rebuilt (records are rowid rows, appended).
CREATE TABLE records_keyed (
    id BLOB NOT NULL,
    case_id BLOB NOT NULL REFERENCES cases(id),
    kind SMALLINT NOT NULL,
    version BIGINT NOT NULL,
    key_epoch INTEGER NOT NULL,
    author_id BLOB NOT NULL,
    envelope BLOB NOT NULL,
    seq BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (case_id, id)
);
INSERT INTO records_keyed (id, case_id, kind, version, key_epoch, author_id, envelope, seq,
                           created_at, updated_at)
    SELECT id, case_id, kind, version, key_epoch, author_id, envelope, seq, created_at, updated_at
    FROM records;
DROP TABLE records;
ALTER TABLE records_keyed RENAME TO records;
CREATE INDEX records_seq ON records(seq);
