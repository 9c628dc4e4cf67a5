DROP TABLE token_key_nodes;
DROP TABLE token_keys;
