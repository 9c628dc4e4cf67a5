DROP TABLE sync_pushes;
