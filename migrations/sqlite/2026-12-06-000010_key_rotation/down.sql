DROP TABLE retired_certificates;
ALTER TABLE case_keys DROP COLUMN keys_digest;
ALTER TABLE members DROP COLUMN next_age_recipient;
ALTER TABLE members DROP COLUMN next_signing_key;
