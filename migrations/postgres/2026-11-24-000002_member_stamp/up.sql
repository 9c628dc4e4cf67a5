-- Every access token carries its member's security stamp; changing the stamp (suspension, reinstatement,
-- revocation of all sessions) makes every token already issued fail on its next request, on every node.
ALTER TABLE members ADD COLUMN security_stamp BIGINT NOT NULL DEFAULT 0;
