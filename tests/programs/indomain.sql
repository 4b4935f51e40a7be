-- keyheap's in-domain test (tests/check_indomain.c): sqlite3 with every
-- allocation inside one domain.  An in-memory database: tables, indexes,
-- a trigger, window functions, JSON, a recursive CTE, VACUUM.
CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT NOT NULL, v INTEGER NOT NULL, pad TEXT);
CREATE TABLE log(n INTEGER);
CREATE TRIGGER t_del AFTER DELETE ON t BEGIN INSERT INTO log VALUES (old.v); END;
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 100000)
INSERT INTO t SELECT i, printf('%08x', (i * 2654435761) % 4294967296), (i * 7919) % 100003,
                     substr('abcdefghijklmnopqrstuvwxyz', 1 + i % 26) FROM c;
CREATE INDEX t_k ON t(k);
CREATE INDEX t_v ON t(v, k);
SELECT count(*), sum(v), min(k), max(k) FROM t;
SELECT k, v FROM t WHERE k >= '80000000' ORDER BY k LIMIT 3;
SELECT v % 10, count(*), sum(id) FROM t GROUP BY v % 10 ORDER BY 1;
SELECT id, v, rank() OVER (PARTITION BY v % 7 ORDER BY k) AS r,
       sum(v) OVER (ORDER BY id ROWS BETWEEN 2 PRECEDING AND CURRENT ROW)
  FROM t WHERE id BETWEEN 500 AND 504 ORDER BY id;
SELECT json_object('n', count(*), 'keys', json_group_array(k)) FROM
  (SELECT k FROM t WHERE v BETWEEN 100 AND 104 ORDER BY k);
SELECT sum(json_extract(j, '$.a') * json_array_length(j, '$.b')) FROM
  (SELECT json_object('a', id, 'b', json_array(id, v, k)) AS j FROM t WHERE id % 1000 = 0);
SELECT group_concat(upper(substr(pad, 1, 3)), '-') FROM (SELECT pad FROM t WHERE id <= 8);
DELETE FROM t WHERE id % 3 = 0;
SELECT count(*), sum(n) FROM log;
VACUUM;
SELECT count(*), sum(length(pad)) FROM t;
PRAGMA integrity_check;
