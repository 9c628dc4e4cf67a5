DROP TABLE sync_checkpoints;
