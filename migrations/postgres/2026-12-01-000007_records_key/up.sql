-- A record is keyed by (case_id, id): its envelope binds it to its case, and every query names the
-- case. The separate unique index on the record id alone is gone: imported record ids are random, so
-- that index put each of a case's ~5 records on a different leaf page, the largest share of the pages
-- an import batch dirties. The primary key replaces records_case (same columns, same order).
ALTER TABLE records DROP CONSTRAINT records_pkey;
ALTER TABLE records ADD PRIMARY KEY (case_id, id);
DROP INDEX records_case;
