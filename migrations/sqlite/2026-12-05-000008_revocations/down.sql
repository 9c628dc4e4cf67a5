DROP TABLE revocation_lists;
