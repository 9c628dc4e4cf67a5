-- Rotating the society escrow key (issue 9). The escrow key has generations: the society's current
-- one (escrow_gen), and during a rotation the next one, whose public recipient, identity wrapped to
-- the recovery key and root-signed certificate the job record holds. Each escrow wrapping of a case
-- key says which generation it was made for (0 on the rows of members, which it does not concern), so
-- a rotation re-wraps exactly the rows still under the old key and the server promotes the new key
-- only when none is left.
ALTER TABLE societies ADD COLUMN escrow_gen INTEGER NOT NULL DEFAULT 1;
ALTER TABLE case_keys ADD COLUMN escrow_gen INTEGER NOT NULL DEFAULT 0;
UPDATE case_keys SET escrow_gen = 1 WHERE recipient_id IN (SELECT id FROM societies);
CREATE TABLE escrow_rotations (
    society_id BYTEA NOT NULL REFERENCES societies(id),
    new_gen INTEGER NOT NULL,
    old_recipient TEXT NOT NULL,
    new_recipient TEXT NOT NULL,
    new_wrapped BYTEA NOT NULL,
    new_certificate BYTEA NOT NULL,
    total BIGINT NOT NULL,
    done BIGINT NOT NULL,
    started_by BYTEA NOT NULL,
    started_at BIGINT NOT NULL,
    completed_at BIGINT,
    PRIMARY KEY (society_id, new_gen)
);
