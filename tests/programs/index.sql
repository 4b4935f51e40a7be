-- keyheap's real-program test: sqlite3 builds an indexed table of 200k rows.
CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT NOT NULL, v INTEGER NOT NULL, pad TEXT);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 200000)
INSERT INTO t SELECT i, printf('%08x', (i * 2654435761) % 4294967296), (i * 7919) % 100003,
                     substr('abcdefghijklmnopqrstuvwxyz', 1 + i % 26) FROM c;
CREATE INDEX t_k ON t(k);
CREATE INDEX t_v ON t(v, k);
SELECT count(*), sum(v), min(k), max(k) FROM t;
SELECT k, v FROM t WHERE k >= '80000000' ORDER BY k LIMIT 5;
SELECT v % 10, count(*), sum(id) FROM t GROUP BY v % 10 ORDER BY 1;
SELECT count(*) FROM t WHERE v BETWEEN 5000 AND 6000;
DELETE FROM t WHERE id % 3 = 0;
VACUUM;
SELECT count(*), sum(length(pad)) FROM t;
PRAGMA integrity_check;
