-- Checkpoints kept by the receiving side of a sync (docs/sync.md, "Checkpoints and the agent"):
-- this server holds every change of the society numbered up to seq on the instance source_instance.
-- A sync agent sets it after each pass it completes and reads it before the next, so an agent
-- that lost its own state file, or was replaced, resumes where the last pass ended; and a server
-- restored from a backup, whose checkpoint is restored with its data, is sent again what the
-- backup lacks.
CREATE TABLE sync_checkpoints (
    society_id BYTEA NOT NULL REFERENCES societies(id),
    source_instance BYTEA NOT NULL,
    seq BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (society_id, source_instance)
);
