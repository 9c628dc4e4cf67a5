-- rfl schema (PostgreSQL). Case content is only ever stored as ciphertext (envelope, wrapped, data columns).
-- Ids are 16-byte UUIDs stored as BYTEA; times are Unix milliseconds.
CREATE TABLE societies (
    id BYTEA PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    escrow_recipient TEXT,
    escrow_wrapped BYTEA,
    created_at BIGINT NOT NULL
);

CREATE TABLE members (
    id BYTEA PRIMARY KEY NOT NULL,
    society_id BYTEA NOT NULL REFERENCES societies(id),
    role TEXT NOT NULL,
    signing_key BYTEA NOT NULL UNIQUE,
    age_recipient TEXT NOT NULL,
    suspended BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL
);
CREATE INDEX members_society ON members(society_id);

CREATE TABLE enrolment_codes (
    code_hash BYTEA PRIMARY KEY NOT NULL,
    society_id BYTEA NOT NULL REFERENCES societies(id),
    role TEXT NOT NULL,
    created_by BYTEA,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    used_by BYTEA
);

CREATE TABLE auth_challenges (
    id BYTEA PRIMARY KEY NOT NULL,
    member_id BYTEA NOT NULL REFERENCES members(id),
    challenge BYTEA NOT NULL,
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
    id BYTEA PRIMARY KEY NOT NULL,
    society_id BYTEA NOT NULL REFERENCES societies(id),
    status TEXT NOT NULL,
    key_epoch INTEGER NOT NULL,
    version BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    created_by BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX cases_society ON cases(society_id);
CREATE INDEX cases_seq ON cases(seq);

-- A case's data key wrapped (age) to one recipient: a member, or the society escrow key (recipient_id =
-- society id). Access to a case is having a row here for the case's current key epoch.
CREATE TABLE case_keys (
    case_id BYTEA NOT NULL REFERENCES cases(id),
    recipient_id BYTEA NOT NULL,
    key_epoch INTEGER NOT NULL,
    wrapped BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (recipient_id, case_id, key_epoch)
);
CREATE INDEX case_keys_case ON case_keys(case_id, key_epoch);

CREATE TABLE records (
    id BYTEA PRIMARY KEY NOT NULL,
    case_id BYTEA NOT NULL REFERENCES cases(id),
    kind SMALLINT NOT NULL,
    version BIGINT NOT NULL,
    key_epoch INTEGER NOT NULL,
    author_id BYTEA NOT NULL,
    envelope BYTEA NOT NULL,
    seq BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX records_case ON records(case_id);
CREATE INDEX records_seq ON records(seq);

CREATE TABLE attachment_chunks (
    attachment_id BYTEA NOT NULL,
    idx INTEGER NOT NULL,
    case_id BYTEA NOT NULL REFERENCES cases(id),
    data BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (attachment_id, idx)
);
