ALTER TABLE case_keys RESET (fillfactor);
