-- Certified public keys (issue 3). The society's signing root public key, set once by its first admin;
-- clients trust it only if it matches the fingerprint they were given out of band.
CREATE TABLE society_roots (
    society_id BYTEA PRIMARY KEY NOT NULL REFERENCES societies(id),
    root_public_key BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);

-- The current key certificate of each subject: a member (admin-signed, or root-signed for admins) or
-- the society itself for its escrow key (root-signed). Opaque to the server, which checks only that a
-- certificate parses and names this society and a subject in it; clients verify the signatures.
CREATE TABLE key_certificates (
    subject_id BYTEA PRIMARY KEY NOT NULL,
    society_id BYTEA NOT NULL REFERENCES societies(id),
    certificate BYTEA NOT NULL,
    issued_at BIGINT NOT NULL
);
CREATE INDEX key_certificates_society ON key_certificates(society_id);
