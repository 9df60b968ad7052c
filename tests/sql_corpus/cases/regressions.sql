-- Disagreements found by the random query generator (generate.py), each minimized to the
-- smallest query that still disagrees. The generator's seed and query number are in a comment.

-- case: gen_constant_projection_keeps_rows
-- (seed 20240229, q_7522ac9bd66a: a select list of constants returned one row, not one per row)
SELECT 1 AS c FROM p

-- case: gen_constant_projection_with_filter
SELECT DATE '2024-03-01' AS c FROM p WHERE q > 2

-- case: gen_constant_decimal_function_rows
-- (seed 20240229, q_d239629f2857: floor(1.5) gave one row, of scale 1)
SELECT floor(1.5) AS c0 FROM n

-- case: gen_floor_decimal_literal_scale
SELECT id, floor(1.5) AS c0, ceil(-2.25) AS c1 FROM n

-- case: gen_sum_of_constant
-- (seed 20240229, q_7eb99127a6af and q_c3c837773b4b: HAVING sum(1) >= 2 kept no group)
SELECT sum(1) AS s FROM t

-- case: gen_sum_of_constant_grouped
SELECT g, sum(1) AS s FROM t GROUP BY g

-- case: gen_having_sum_of_constant
SELECT g, count(*) AS n FROM t GROUP BY g HAVING sum(1) >= 2

-- case: gen_aggregate_of_literal_on_empty
-- (seed 20240229, q_4511831095d1: min(DATE '2023-12-31') over no rows was the date, not NULL)
SELECT max(5) AS c1, sum(2) AS c2, min(DATE '2023-12-31') AS c3 FROM e

-- case: gen_aggregate_of_literal_on_empty_join
SELECT count(DISTINCT a.id) AS c0, min(DATE '2023-12-31') AS c1 FROM t a JOIN e b ON a.id = b.v

-- case: gen_sum_decimal_literal_filtered
-- (seed 20240229, q_2847991f6469: sum(100.00) over 5 rows was 100.00)
SELECT sum(100.00) AS c0 FROM t WHERE d <= x

-- case: gen_count_star_with_filter_only
SELECT count(*) AS c0 FROM t WHERE d <= x

-- case: gen_cross_join_side_unreferenced
-- (seed 20240229, q_b8d9ca5c1af7: a cross join whose one side has no column used gave no rows)
SELECT b.id AS c0 FROM u a CROSS JOIN u b

-- case: gen_or_exists_bare_aggregate_cross_join
SELECT b.id AS c0 FROM u a CROSS JOIN u b WHERE b.v > 60 OR EXISTS (SELECT max(s.id) FROM u s WHERE s.k = a.id)

-- case: gen_cast_double_to_int_except_all
-- (seed 20240229, q_5c0d56b9eef5: CAST(x AS INTEGER) rounds halves to even in DuckDB; EXCEPT ALL)
SELECT CAST(x AS INTEGER) AS c0 FROM t EXCEPT ALL SELECT v AS c0 FROM u

-- case: gen_constant_projection_filtered_to_nothing
-- (seed 1, q_cb93a5f8542a: a constant select list over a filter that keeps no row gave one row)
SELECT 1.5 AS c FROM u WHERE d > 1000

-- case: gen_constant_projection_from_empty
-- (seed 1, q_2a3cce1292a9)
SELECT nullif(0.0, 100.00) AS c0 FROM e

-- case: gen_count_star_over_left_join
-- (seed 1, q_0a8c698af8f3: count(*) of a join was 0)
SELECT count(*) AS c0 FROM u a LEFT JOIN u b ON a.k = b.k

-- case: gen_dense_rank_unique_order
-- (seed 1, q_9603f28b697d: every rank was 1)
SELECT id, dense_rank() OVER (ORDER BY id) AS r FROM u

-- case: gen_running_sum_partitioned
-- (seed 1, q_857754adcbe4: the running sum did not run)
SELECT id, sum(id) OVER (PARTITION BY s ORDER BY id) AS c1 FROM u

-- case: gen_intersect_all_constant_from_empty
-- (seed 1, q_493cea9057f0)
SELECT s AS c0 FROM t INTERSECT ALL SELECT trim('date') AS c0 FROM e

-- case: gen_union_all_constant_branch
-- (seed 1, q_d75dd49cc394: the constant branch gave one row; 3.25e0 is a DOUBLE)
SELECT 3.25e0 AS c0 FROM n UNION ALL SELECT d AS c0 FROM t

-- case: gen_sum_of_double_literal_grouped
-- (seed 1, q_a0c6f1fe0529: sum(2.5e0) was 2.5, a decimal)
SELECT c, count(*) AS n, sum(2.5e0) AS s FROM p GROUP BY c

-- case: gen_union_cast_double_to_int
-- (seed 1, q_5a9c1d93f464: CAST(x AS INTEGER) of halves)
SELECT id AS c0 FROM n UNION SELECT greatest(100, k) + CAST(x AS INTEGER) AS c0 FROM t

-- case: gen_double_literals_type
SELECT 2.5e0 AS c0, 1e-3 AS c1, id FROM one
