-- Certificate revocation lists (issue 9): each society's signed, numbered, cumulative list of revoked
-- keys (docs/crypto.md, "Certificate revocation lists"). Opaque to the server, which checks that an
-- upload parses, is signed by the uploading admin (or the society root), is the next number and keeps
-- every entry of the list before; clients verify it against their pinned root and refuse one older
-- than the last they saw.
CREATE TABLE revocation_lists (
    society_id BLOB NOT NULL REFERENCES societies(id),
    number BIGINT NOT NULL,
    list BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (society_id, number)
);
