-- The Movement root and transfers between societies (issue 9). The Movement root's public key is set
-- once; it certifies each society's root (crates/crypto/src/movement.rs), and members pin its
-- fingerprint at enrolment. A transfer offers a case to another society: the case's data keys
-- wrapped to the receiving society's escrow key wait in transfer_keys until its admin accepts (with a
-- signed transfer commit on the case) or rejects; the sending side may cancel.
CREATE TABLE movement_root (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    public_key BLOB NOT NULL,
    set_by BLOB NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE society_certificates (
    society_id BLOB NOT NULL REFERENCES societies(id),
    society_root BLOB NOT NULL,
    certificate BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (society_id, society_root)
);
CREATE TABLE transfers (
    id BLOB PRIMARY KEY,
    case_id BLOB NOT NULL REFERENCES cases(id),
    from_society BLOB NOT NULL REFERENCES societies(id),
    to_society BLOB NOT NULL REFERENCES societies(id),
    offered_by BLOB NOT NULL,
    offered_at BIGINT NOT NULL,
    case_version BIGINT NOT NULL,
    key_epoch INTEGER NOT NULL,
    keep_access BOOLEAN NOT NULL DEFAULT 0,
    escrow_recipient TEXT NOT NULL,
    state TEXT NOT NULL,
    decided_by BLOB,
    decided_at BIGINT,
    assigned_to BLOB
);
-- At most one open offer per case.
CREATE UNIQUE INDEX transfers_pending_case ON transfers (case_id) WHERE state = 'pending';
CREATE INDEX transfers_to ON transfers (to_society, offered_at);
CREATE INDEX transfers_from ON transfers (from_society, offered_at);
CREATE TABLE transfer_keys (
    transfer_id BLOB NOT NULL REFERENCES transfers(id),
    key_epoch INTEGER NOT NULL,
    wrapped BLOB NOT NULL,
    PRIMARY KEY (transfer_id, key_epoch)
);
