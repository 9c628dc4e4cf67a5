DROP INDEX cases_society_seq;
CREATE INDEX cases_society ON cases(society_id);
CREATE INDEX cases_seq ON cases(seq);
