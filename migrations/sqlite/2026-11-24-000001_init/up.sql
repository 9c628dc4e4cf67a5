-- rfl schema (SQLite). Case content is only ever stored as ciphertext (envelope, wrapped, data columns).
-- Ids are 16-byte UUIDs stored as BLOB; times are Unix milliseconds.
CREATE TABLE societies (
    id BLOB PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    escrow_recipient TEXT,
    escrow_wrapped BLOB,
    created_at BIGINT NOT NULL
);

CREATE TABLE members (
    id BLOB PRIMARY KEY NOT NULL,
    society_id BLOB NOT NULL REFERENCES societies(id),
    role TEXT NOT NULL,
    signing_key BLOB NOT NULL UNIQUE,
    age_recipient TEXT NOT NULL,
    suspended BOOLEAN NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
CREATE INDEX members_society ON members(society_id);

CREATE TABLE enrolment_codes (
    code_hash BLOB PRIMARY KEY NOT NULL,
    society_id BLOB NOT NULL REFERENCES societies(id),
    role TEXT NOT NULL,
    created_by BLOB,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    used_by BLOB
);

CREATE TABLE auth_challenges (
    id BLOB PRIMARY KEY NOT NULL,
    member_id BLOB NOT NULL REFERENCES members(id),
    challenge BLOB NOT NULL,
    expires_at BIGINT NOT NULL
);

-- One row; its value is the last change sequence number handed out. Writers take it with an UPDATE, which
-- serialises them, so sequence order is commit order (a change feed read from a cursor never skips a row).
CREATE TABLE change_counter (
    id INTEGER PRIMARY KEY NOT NULL,
    value BIGINT NOT NULL
);
INSERT INTO change_counter (id, value) VALUES (1, 0);

CREATE TABLE cases (
    id BLOB PRIMARY KEY NOT NULL,
    society_id BLOB NOT NULL REFERENCES societies(id),
    status TEXT NOT NULL,
    key_epoch INTEGER NOT NULL,
    version BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    created_by BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX cases_society ON cases(society_id);
CREATE INDEX cases_seq ON cases(seq);

-- A case's data key wrapped (age) to one recipient: a member, or the society escrow key (recipient_id =
-- society id). Access to a case is having a row here for the case's current key epoch.
CREATE TABLE case_keys (
    case_id BLOB NOT NULL REFERENCES cases(id),
    recipient_id BLOB NOT NULL,
    key_epoch INTEGER NOT NULL,
    wrapped BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (recipient_id, case_id, key_epoch)
);
CREATE INDEX case_keys_case ON case_keys(case_id, key_epoch);

CREATE TABLE records (
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
CREATE INDEX records_case ON records(case_id);
CREATE INDEX records_seq ON records(seq);

CREATE TABLE attachment_chunks (
    attachment_id BLOB NOT NULL,
    idx INTEGER NOT NULL,
    case_id BLOB NOT NULL REFERENCES cases(id),
    data BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (attachment_id, idx)
);
