-- Rotating a society's signing root (issue 9): the old root signs its successor (and the successor
-- signs the same statement, crates/crypto/src/succession.rs). Every succession is kept, in order, and
-- served with the certificates, so a member who pinned any earlier root follows them to the current.
CREATE TABLE root_successions (
    society_id BLOB NOT NULL REFERENCES societies(id),
    number INTEGER NOT NULL,
    succession BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (society_id, number)
);
