DROP TABLE transfer_keys;
DROP TABLE transfers;
DROP TABLE society_certificates;
DROP TABLE movement_root;
