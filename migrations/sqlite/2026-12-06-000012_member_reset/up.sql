-- A person who lost every authenticator (issue 9): an admin resets them, which revokes their keys
-- and issues a one-time code that re-enrols the same member (for_member) with new keys and a new
-- passkey, instead of creating a new member.
ALTER TABLE enrolment_codes ADD COLUMN for_member BLOB;
