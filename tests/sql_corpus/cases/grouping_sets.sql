-- GROUP BY ROLLUP, CUBE, GROUPING SETS and grouping(): a rolled-up NULL is not the data's NULL.

-- case: rollup_two_keys
SELECT k, c, sum(amt) AS s, count(*) AS n FROM p GROUP BY ROLLUP (k, c)

-- case: rollup_with_grouping
SELECT c, y, grouping(c) AS gc, grouping(y) AS gy, sum(amt) AS s FROM p GROUP BY ROLLUP (c, y)

-- case: cube_two_keys
SELECT c, y, sum(amt) AS s FROM p GROUP BY CUBE (c, y)

-- case: cube_with_grouping_id
SELECT c, y, grouping(c, y) AS gid, count(*) AS n FROM p GROUP BY CUBE (c, y)

-- case: grouping_sets_explicit
SELECT k, c, sum(amt) AS s FROM p GROUP BY GROUPING SETS ((k), (c), ())

-- case: grouping_sets_with_pairs
SELECT k, c, y, count(*) AS n FROM p GROUP BY GROUPING SETS ((k, c), (c, y))

-- case: rollup_expression
SELECT k, v % 2 AS par, sum(v) AS s FROM t GROUP BY ROLLUP (k, v % 2)

-- case: rollup_grouping_expression
SELECT k, grouping(k) AS gk, sum(v) AS s FROM t GROUP BY ROLLUP (k)

-- case: rollup_having
SELECT c, sum(amt) AS s FROM p GROUP BY ROLLUP (c) HAVING sum(amt) > 10

-- case: rollup_null_key_distinguished
SELECT c, grouping(c) AS gc, count(*) AS n FROM p GROUP BY ROLLUP (c)

-- case: grouping_sets_empty_table
SELECT k, count(*) AS n FROM e GROUP BY GROUPING SETS ((k), ())

-- case: rollup_ordered
-- ordered
SELECT c, y, sum(amt) AS s FROM p GROUP BY ROLLUP (c, y) ORDER BY c NULLS LAST, y NULLS LAST, s

-- case: cube_three_keys_count
SELECT count(*) AS sets FROM (SELECT k, c, y FROM p GROUP BY CUBE (k, c, y)) q

-- case: rollup_with_avg_decimal
SELECT y, avg(amt) AS a, sum(amt) AS s FROM p GROUP BY ROLLUP (y)
