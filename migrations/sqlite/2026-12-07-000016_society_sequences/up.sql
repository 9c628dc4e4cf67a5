-- Each society numbers its own changes (docs/sync.md, "Sequences and cursors"). Until now one
-- change_counter row numbered every write of every society, and every write held its lock until
-- commit, so the writers of all societies queued behind one row. A society's changes need only
-- their own order: one row per society, taken the same way (an UPDATE that holds the row's lock
-- until commit, so within a society sequence order is commit order).
CREATE TABLE society_seq (
    society_id BLOB PRIMARY KEY NOT NULL REFERENCES societies(id),
    -- The last sequence number handed out for this society's changes.
    value BIGINT NOT NULL
);
-- Every society continues from the shared counter's last number: each number a reader already
-- holds as a cursor stays below every number handed out from now on.
INSERT INTO society_seq (society_id, value)
    SELECT id, (SELECT value FROM change_counter WHERE id = 1) FROM societies;
DROP TABLE change_counter;
