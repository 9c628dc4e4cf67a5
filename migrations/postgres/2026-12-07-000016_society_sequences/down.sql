CREATE TABLE change_counter (
    id INTEGER PRIMARY KEY NOT NULL,
    value BIGINT NOT NULL
);
INSERT INTO change_counter (id, value) SELECT 1, COALESCE(MAX(value), 0) FROM society_seq;
DROP TABLE society_seq;
