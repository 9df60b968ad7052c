-- Subqueries: IN, NOT IN, EXISTS, NOT EXISTS, scalar (in every clause), ANY/ALL, correlated and
-- not, over aggregates (which always return one row), over no rows (the "count bug").

-- case: in_subquery_uncorrelated
SELECT id FROM t WHERE k IN (SELECT k FROM u)

-- case: not_in_subquery_with_null
SELECT id FROM t WHERE k NOT IN (SELECT k FROM u)

-- case: not_in_subquery_no_null
SELECT id FROM t WHERE k NOT IN (SELECT k FROM u WHERE k IS NOT NULL)

-- case: not_in_subquery_empty
SELECT id FROM t WHERE k NOT IN (SELECT k FROM e)

-- case: in_subquery_empty
SELECT id FROM t WHERE k IN (SELECT k FROM e)

-- case: in_subquery_select_list
SELECT id, k IN (SELECT k FROM u) AS m FROM t

-- case: not_in_subquery_select_list
SELECT id, k NOT IN (SELECT k FROM u WHERE k IS NOT NULL) AS m FROM t

-- case: in_subquery_correlated_min
SELECT id FROM t WHERE v IN (SELECT min(v) FROM u WHERE u.k = t.k)

-- case: in_subquery_correlated_min_rows
SELECT t.id AS tid FROM t WHERE t.v IN (SELECT min(u.v) - 97 FROM u WHERE u.k = t.k)

-- case: in_subquery_correlated_plain
SELECT id FROM t WHERE v IN (SELECT u.v FROM u WHERE u.k = t.k)

-- case: not_in_subquery_correlated
SELECT id FROM t WHERE v NOT IN (SELECT u.v FROM u WHERE u.k = t.k)

-- case: exists_correlated
SELECT id FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.k = t.k)

-- case: not_exists_correlated
SELECT id FROM t WHERE NOT EXISTS (SELECT 1 FROM u WHERE u.k = t.k)

-- case: exists_uncorrelated_true
SELECT id FROM t WHERE EXISTS (SELECT 1 FROM u WHERE v > 60)

-- case: exists_uncorrelated_false
SELECT id FROM t WHERE EXISTS (SELECT 1 FROM e)

-- case: not_exists_uncorrelated_empty
SELECT id FROM t WHERE NOT EXISTS (SELECT 1 FROM e)

-- case: exists_bare_max_correlated
SELECT id FROM t WHERE EXISTS (SELECT max(v) FROM u WHERE u.k = t.k)

-- case: not_exists_bare_max_correlated
SELECT id FROM t WHERE NOT EXISTS (SELECT max(v) FROM u WHERE u.k = t.k)

-- case: exists_bare_count_correlated
SELECT id FROM t WHERE EXISTS (SELECT count(*) FROM u WHERE u.k = t.k)

-- case: not_exists_bare_count_correlated
SELECT id FROM t WHERE NOT EXISTS (SELECT count(*) FROM u WHERE u.k = t.k)

-- case: exists_aggregate_having_correlated
SELECT id FROM t WHERE EXISTS (SELECT max(v) FROM u WHERE u.k = t.k HAVING max(v) > 10)

-- case: exists_correlated_inequality
SELECT id FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.k = t.k AND u.v > t.v)

-- case: exists_correlated_only_inequality
SELECT id FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.v > t.v * 10)

-- case: not_exists_correlated_inequality
SELECT id FROM t WHERE NOT EXISTS (SELECT 1 FROM u WHERE u.k = t.k AND u.v < t.v)

-- case: exists_correlated_two_keys
SELECT id FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.k = t.k AND u.s = t.s)

-- case: exists_or_condition
SELECT id FROM t WHERE v > 5 OR EXISTS (SELECT 1 FROM u WHERE u.k = t.k)

-- case: exists_in_select_list
SELECT id, EXISTS (SELECT 1 FROM u WHERE u.k = t.k) AS has FROM t

-- case: scalar_uncorrelated_compare
SELECT id FROM t WHERE v > (SELECT avg(v) FROM u)

-- case: scalar_uncorrelated_select_list
SELECT id, (SELECT max(v) FROM u) AS mx FROM t

-- case: scalar_uncorrelated_arith
SELECT id, v - (SELECT min(v) FROM u) AS dv FROM t

-- case: scalar_uncorrelated_empty_is_null
SELECT id, (SELECT max(v) FROM e) AS mx FROM t

-- case: scalar_uncorrelated_no_rows_non_agg
SELECT id, (SELECT v FROM u WHERE v > 1000) AS nv FROM t

-- case: scalar_correlated_sum
SELECT id, (SELECT sum(u.v) FROM u WHERE u.k = t.k) AS su FROM t

-- case: scalar_correlated_count
SELECT id, (SELECT count(*) FROM u WHERE u.k = t.k) AS cu FROM t

-- case: scalar_correlated_count_column
SELECT id, (SELECT count(u.v) FROM u WHERE u.k = t.k) AS cu FROM t

-- case: scalar_correlated_compare_where
SELECT id FROM t WHERE v < (SELECT max(u.v) FROM u WHERE u.k = t.k)

-- case: scalar_correlated_coalesce_zero
SELECT id FROM t WHERE 0 = (SELECT coalesce(sum(v), 0) FROM u WHERE u.k = t.k)

-- case: scalar_correlated_count_zero
SELECT id FROM t WHERE (SELECT count(*) FROM u WHERE u.k = t.k) = 0

-- case: scalar_correlated_coalesce_select
SELECT id, (SELECT coalesce(sum(v), -1) FROM u WHERE u.k = t.k) AS s FROM t

-- case: scalar_correlated_in_arith
SELECT id, v * 100 / (SELECT sum(u.v) FROM u WHERE u.k = t.k) AS pct FROM t

-- case: scalar_correlated_in_case
SELECT id, CASE WHEN v > (SELECT avg(u.v) FROM u WHERE u.k = t.k) THEN 'above' ELSE 'not' END AS c FROM t

-- case: scalar_correlated_two_keys
SELECT id, (SELECT max(u.id) FROM u WHERE u.k = t.k AND u.s = t.s) AS m FROM t

-- case: scalar_correlated_inequality
SELECT id, (SELECT count(*) FROM u WHERE u.v < t.v) AS smaller FROM t

-- case: scalar_subquery_multiple_rows
-- error
SELECT id, (SELECT v FROM u) AS x FROM t

-- case: scalar_subquery_multiple_rows_where
-- error
SELECT id FROM t WHERE v = (SELECT v FROM u WHERE v > 0)

-- case: scalar_subquery_correlated_multiple_rows
-- error
SELECT id, (SELECT u.v FROM u WHERE u.k = t.k) AS x FROM t

-- case: scalar_subquery_one_row_non_agg
SELECT id, (SELECT v FROM u WHERE id = 106) AS x FROM t

-- case: scalar_subquery_distinct
SELECT id, (SELECT DISTINCT k FROM u WHERE k = 8) AS x FROM t

-- case: scalar_subquery_distinct_multiple
-- error
SELECT id, (SELECT DISTINCT k FROM u) AS x FROM t

-- case: scalar_subquery_order_limit
SELECT id, (SELECT v FROM u WHERE v IS NOT NULL ORDER BY v DESC LIMIT 1) AS top FROM t

-- case: scalar_subquery_order_limit_correlated
SELECT id, (SELECT u.v FROM u WHERE u.k = t.k ORDER BY u.v LIMIT 1) AS low FROM t

-- case: scalar_subquery_in_between
SELECT id FROM t WHERE v BETWEEN (SELECT min(v) FROM u) AND (SELECT avg(v) FROM u)

-- case: scalar_subquery_in_having
SELECT k, sum(v) AS sv FROM t GROUP BY k HAVING sum(v) > (SELECT avg(v) FROM u)

-- case: scalar_subquery_correlated_in_having
SELECT k, sum(v) AS sv FROM t GROUP BY k HAVING sum(v) > (SELECT min(u.v) FROM u WHERE u.k = t.k)

-- case: in_subquery_in_having
SELECT k, count(*) AS n FROM t GROUP BY k HAVING k IN (SELECT k FROM u)

-- case: any_subquery
SELECT id FROM t WHERE v > ANY (SELECT v FROM u WHERE k = 1)

-- case: all_subquery
SELECT id FROM t WHERE v > ALL (SELECT v FROM u WHERE k = 1)

-- case: all_subquery_with_null
SELECT id FROM t WHERE v < ALL (SELECT v FROM u WHERE k = 2 OR k = 3)

-- case: all_subquery_empty
SELECT id FROM t WHERE v > ALL (SELECT v FROM e)

-- case: any_subquery_equals
SELECT id FROM t WHERE k = ANY (SELECT k FROM u)

-- case: some_subquery
SELECT id FROM t WHERE v <= SOME (SELECT v FROM u WHERE v < 0)

-- case: any_in_select_list
SELECT id, v > ANY (SELECT v FROM u) AS a FROM t

-- case: correlated_derived_table_alias
SELECT d.k AS k, d.sv AS sv FROM (SELECT k, sum(v) AS sv FROM t GROUP BY k) d WHERE d.sv > (SELECT min(u.v) FROM u WHERE u.k = d.k)

-- case: exists_against_derived_alias
SELECT d.id AS id FROM (SELECT id, k FROM t WHERE v > 0) AS d WHERE EXISTS (SELECT 1 FROM u WHERE u.k = d.k)

-- case: subquery_in_from
SELECT s.k AS k, s.n AS n FROM (SELECT k, count(*) AS n FROM t GROUP BY k) s WHERE s.n > 1

-- case: nested_subquery_two_levels
SELECT id FROM t WHERE k IN (SELECT k FROM u WHERE v > (SELECT avg(v) FROM u))

-- case: nested_correlated_two_levels
SELECT id FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.k = t.k AND EXISTS (SELECT 1 FROM p WHERE p.k = u.k))

-- case: correlation_to_outer_outer
SELECT id FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.k = t.k AND EXISTS (SELECT 1 FROM p WHERE p.k = t.k))

-- case: in_subquery_with_group_having
SELECT id FROM t WHERE k IN (SELECT k FROM u GROUP BY k HAVING count(*) > 1)

-- case: in_subquery_two_columns_tuple
SELECT id FROM t WHERE (k, s) IN (SELECT k, s FROM u)

-- case: scalar_subquery_in_join_on
SELECT t.id AS tid, u.id AS uid FROM t JOIN u ON t.k = u.k AND u.v > (SELECT avg(v) FROM u)

-- case: subquery_user_alias_dunder
SELECT __s1.k AS k, __s1.n AS n FROM (SELECT k, count(*) AS n FROM t GROUP BY k) AS __s1

-- case: subquery_alias_like_generated
SELECT id FROM t AS __sq_1 WHERE EXISTS (SELECT 1 FROM u AS __sq_2 WHERE __sq_2.k = __sq_1.k)

-- case: qualifier_in_other_case
SELECT T.id AS id FROM t WHERE T.K IN (SELECT U.K FROM u AS U WHERE U.V > 0)

-- case: count_distinct_in_subquery
SELECT id FROM t WHERE k <= (SELECT count(DISTINCT k) FROM u)

-- case: exists_with_limit_zero
SELECT id FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.k = t.k LIMIT 0)

-- case: scalar_subquery_empty_count_uncorrelated
SELECT (SELECT count(*) FROM e) AS n, (SELECT sum(v) FROM e) AS s FROM one

-- case: lateral_refused_or_right
SELECT t.id AS tid, l.m AS m FROM t, LATERAL (SELECT max(u.v) AS m FROM u WHERE u.k = t.k) l
