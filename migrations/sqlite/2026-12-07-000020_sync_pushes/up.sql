-- The answers to pushes of changes from another server (docs/sync.md, "Push"), by the
-- Idempotency-Key the sync agent sent: the same key sent again, with the same body, gets the same
-- answer for 24 hours (the handler ignores and clears older rows), so an agent that lost an answer
-- learns what happened instead of reading "known" for everything.
CREATE TABLE sync_pushes (
    society_id BLOB NOT NULL REFERENCES societies(id),
    idempotency_key TEXT NOT NULL,
    request_digest BLOB NOT NULL,
    answer BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (society_id, idempotency_key)
);
