ALTER TABLE passkeys DROP COLUMN key_wrap;
