-- This database's identity, made once when the database is created: a sync cursor names the
-- instance it was read from (docs/sync.md, "Sequences and cursors"), so a cursor from another
-- database (a rebuilt hub, a society's second server) is an error a sync agent sees, not a number
-- that silently means something else here. One row.
CREATE TABLE instance (
    singleton INTEGER PRIMARY KEY NOT NULL CHECK (singleton = 1),
    id BYTEA NOT NULL
);
INSERT INTO instance (singleton, id) VALUES (1, decode(replace(gen_random_uuid()::text, '-', ''), 'hex'));
