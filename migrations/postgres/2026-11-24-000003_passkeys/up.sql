-- WebAuthn passkeys (issue 3). A passkey row holds the credential's public key and counter as
-- webauthn-rs serialises them (JSON text); the id is the credential id the authenticator chose.
CREATE TABLE passkeys (
    id BYTEA PRIMARY KEY NOT NULL,
    member_id BYTEA NOT NULL REFERENCES members(id),
    passkey TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX passkeys_member ON passkeys(member_id);

-- Registration and sign-in ceremonies in progress. Kept in the database (not in process memory) so any
-- API node can finish a ceremony another began; each row is deleted when it is read (single use).
CREATE TABLE webauthn_ceremonies (
    id BYTEA PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    member_id BYTEA,
    code_hash BYTEA,
    state TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX webauthn_ceremonies_expiry ON webauthn_ceremonies(expires_at);
