DROP TABLE root_successions;
