DROP TABLE key_certificates;
DROP TABLE society_roots;
