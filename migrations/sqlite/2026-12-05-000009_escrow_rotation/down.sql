DROP TABLE escrow_rotations;
ALTER TABLE case_keys DROP COLUMN escrow_gen;
ALTER TABLE societies DROP COLUMN escrow_gen;
