ALTER TABLE enrolment_codes DROP COLUMN for_member;
