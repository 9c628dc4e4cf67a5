-- Room on each page of case_keys for the new version of its rows. An escrow rotation rewrites every
-- escrow wrapping (wrapped, escrow_gen: no indexed column), and PostgreSQL can then update in place
-- on the same page (a HOT update) instead of writing a new row version elsewhere and an entry in
-- each of the table's two indexes. At the default fillfactor of 100 the pages are full after an
-- import and no rewrite is HOT (docs/benchmarks.md, run 22). Rows inserted from now on leave the
-- room; existing pages get it when the table is rewritten (VACUUM FULL case_keys).
ALTER TABLE case_keys SET (fillfactor = 70);
