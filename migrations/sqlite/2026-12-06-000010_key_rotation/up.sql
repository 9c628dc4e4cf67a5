-- Rotating a person's keys (issue 9). A member registers the keys they will rotate to (next_*); an
-- admin's certificate of those keys switches them in one transaction, which also keeps the member's
-- superseded certificate (retired_certificates: their commits signed before the switch still verify)
-- and records, on each key row still wrapped to the superseded keys, the digest of those keys
-- (case_keys.keys_digest; NULL means the recipient's registered keys). The member's client then
-- re-wraps those rows to the new keys, and holder lists name the keys each row is wrapped to.
ALTER TABLE members ADD COLUMN next_signing_key BLOB;
ALTER TABLE members ADD COLUMN next_age_recipient TEXT;
ALTER TABLE case_keys ADD COLUMN keys_digest BLOB;
CREATE TABLE retired_certificates (
    subject_id BLOB NOT NULL,
    keys_digest BLOB NOT NULL,
    society_id BLOB NOT NULL REFERENCES societies(id),
    certificate BLOB NOT NULL,
    retired_at BIGINT NOT NULL,
    PRIMARY KEY (subject_id, keys_digest)
);
CREATE INDEX retired_certificates_society ON retired_certificates (society_id);
