ALTER TABLE members DROP COLUMN security_stamp;
