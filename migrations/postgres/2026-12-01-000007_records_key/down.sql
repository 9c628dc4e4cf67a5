CREATE INDEX records_case ON records(case_id, id);
ALTER TABLE records DROP CONSTRAINT records_pkey;
ALTER TABLE records ADD PRIMARY KEY (id);
