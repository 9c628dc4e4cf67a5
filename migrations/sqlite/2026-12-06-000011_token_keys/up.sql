-- Rotating the server's token-signing key (issue 9) in the order Tink prescribes: add, distribute,
-- promote. The private keys are files on each API node, never in the database (a database thief must
-- not be able to mint tokens, nor to make a node accept a key it does not hold). The database holds
-- what several nodes on it must agree on: which keys exist and what each may do (state: 'next' verifies
-- only, 'primary' signs and verifies, 'previous' verifies until verify_until, when its last token has
-- expired), and which key files each running node holds, so a key is promoted only once every node can
-- verify what it signs.
CREATE TABLE token_keys (
    kid TEXT PRIMARY KEY,
    public_key BLOB NOT NULL,
    state TEXT NOT NULL,
    added_at BIGINT NOT NULL,
    promoted_at BIGINT,
    verify_until BIGINT
);
CREATE TABLE token_key_nodes (
    node_id TEXT PRIMARY KEY,
    kids TEXT NOT NULL,
    seen_at BIGINT NOT NULL
);
