-- The Movement root and transfers between societies (issue 9). The Movement root's public key is set
-- once; it certifies each society's root (crates/crypto/src/movement.rs), and members pin its
-- fingerprint at enrolment. A transfer offers a case to another society: the case's data keys
-- wrapped to the receiving society's escrow key wait in transfer_keys until its admin accepts (with a
-- signed transfer commit on the case) or rejects; the sending side may cancel.
CREATE TABLE movement_root (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    public_key BYTEA NOT NULL,
    set_by BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE society_certificates (
    society_id BYTEA NOT NULL REFERENCES societies(id),
    society_root BYTEA NOT NULL,
    certificate BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (society_id, society_root)
);
CREATE TABLE transfers (
    id BYTEA PRIMARY KEY,
    case_id BYTEA NOT NULL REFERENCES cases(id),
    from_society BYTEA NOT NULL REFERENCES societies(id),
    to_society BYTEA NOT NULL REFERENCES societies(id),
    offered_by BYTEA NOT NULL,
    offered_at BIGINT NOT NULL,
    case_version BIGINT NOT NULL,
    key_epoch INTEGER NOT NULL,
    keep_access BOOLEAN NOT NULL DEFAULT FALSE,
    escrow_recipient TEXT NOT NULL,
    state TEXT NOT NULL,
    decided_by BYTEA,
    decided_at BIGINT,
    assigned_to BYTEA
);
-- At most one open offer per case.
CREATE UNIQUE INDEX transfers_pending_case ON transfers (case_id) WHERE state = 'pending';
CREATE INDEX transfers_to ON transfers (to_society, offered_at);
CREATE INDEX transfers_from ON transfers (from_society, offered_at);
CREATE TABLE transfer_keys (
    transfer_id BYTEA NOT NULL REFERENCES transfers(id),
    key_epoch INTEGER NOT NULL,
    wrapped BYTEA NOT NULL,
    PRIMARY KEY (transfer_id, key_epoch)
);
