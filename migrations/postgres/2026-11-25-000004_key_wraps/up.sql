-- Hardware-backed caseworker keys (issue 3). Each passkey may carry the client's wrapping of the person's
-- private keys for that authenticator: an opaque blob (see docs/crypto.md, "Keys held by authenticators").
-- The server stores and returns it; it cannot open it (the wrapping key comes from the authenticator's
-- PRF output, which never leaves the client).
ALTER TABLE passkeys ADD COLUMN key_wrap BYTEA;
