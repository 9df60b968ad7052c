-- Joins of every type, with NULL keys (never equal), duplicate keys on both sides, keys on one
-- side only, conditions in ON that are not equalities, and chains of joins.

-- case: inner_join_null_dup_keys
SELECT t.id AS tid, u.id AS uid FROM t JOIN u ON t.k = u.k

-- case: left_join_null_dup_keys
SELECT t.id AS tid, u.id AS uid, u.v AS uv FROM t LEFT JOIN u ON t.k = u.k

-- case: right_join_null_dup_keys
SELECT t.id AS tid, u.id AS uid FROM t RIGHT JOIN u ON t.k = u.k

-- case: full_join_null_dup_keys
SELECT t.id AS tid, u.id AS uid, coalesce(t.k, u.k) AS k FROM t FULL JOIN u ON t.k = u.k

-- case: full_outer_join_keyword
SELECT t.id AS tid, u.id AS uid FROM t FULL OUTER JOIN u ON t.k = u.k AND t.v = u.v

-- case: cross_join_count
SELECT count(*) AS n, sum(t.id * u.id) AS s FROM t CROSS JOIN u

-- case: cross_join_rows
SELECT t.id AS tid, one.id AS oid FROM t CROSS JOIN one

-- case: join_using
SELECT k, t.id AS tid, u.id AS uid FROM t JOIN u USING (k)

-- case: left_join_using_key_from_left
SELECT k, t.id AS tid, u.id AS uid FROM t LEFT JOIN u USING (k)

-- case: full_join_using_merged_key
SELECT k, t.id AS tid, u.id AS uid FROM t FULL JOIN u USING (k)

-- case: natural_join_like_two_keys
SELECT t.id AS tid, u.id AS uid FROM t JOIN u ON t.k = u.k AND t.s = u.s

-- case: join_two_keys_with_nulls
SELECT t.id AS tid, u.id AS uid FROM t JOIN u ON t.k = u.k AND t.v = u.v

-- case: join_is_not_distinct_from
SELECT t.id AS tid, u.id AS uid FROM t JOIN u ON t.k IS NOT DISTINCT FROM u.k

-- case: left_join_is_not_distinct_from
SELECT t.id AS tid, u.id AS uid FROM t LEFT JOIN u ON t.k IS NOT DISTINCT FROM u.k

-- case: inner_join_non_equi_extra
SELECT t.id AS tid, u.id AS uid FROM t JOIN u ON t.k = u.k AND t.v < u.v

-- case: inner_join_only_inequality
SELECT t.id AS tid, u.id AS uid FROM t JOIN u ON t.v > u.v

-- case: inner_join_between
SELECT t.id AS tid, u.id AS uid FROM t JOIN u ON u.v BETWEEN t.v AND t.v + 50

-- case: inner_join_or_condition
SELECT t.id AS tid, u.id AS uid FROM t JOIN u ON t.k = u.k OR t.s = u.s

-- case: left_join_non_equi_extra
SELECT t.id AS tid, u.id AS uid FROM t LEFT JOIN u ON t.k = u.k AND u.v > 60

-- case: left_join_on_condition_on_left
SELECT t.id AS tid, u.id AS uid FROM t LEFT JOIN u ON t.k = u.k AND t.v > 0

-- case: left_join_inequality_only
SELECT t.id AS tid, u.id AS uid FROM t LEFT JOIN u ON t.v < u.v

-- case: right_join_non_equi_extra
SELECT t.id AS tid, u.id AS uid FROM t RIGHT JOIN u ON t.k = u.k AND t.v < u.v

-- case: full_join_non_equi_extra
SELECT t.id AS tid, u.id AS uid FROM t FULL JOIN u ON t.k = u.k AND t.v < u.v

-- case: left_join_where_on_right_is_null
SELECT t.id AS tid FROM t LEFT JOIN u ON t.k = u.k WHERE u.id IS NULL

-- case: left_join_where_on_right_filters
SELECT t.id AS tid, u.id AS uid FROM t LEFT JOIN u ON t.k = u.k WHERE u.v > 10

-- case: left_join_filter_in_on_vs_where
SELECT t.id AS tid, u.id AS uid FROM t LEFT JOIN u ON t.k = u.k AND u.s = 'x'

-- case: inner_then_right_join
SELECT t.id AS tid, u.id AS uid, w.id AS wid FROM t JOIN u ON t.k = u.k RIGHT JOIN w ON w.id = t.id

-- case: inner_non_equi_then_right_join
SELECT t.id AS tid, u.id AS uid, w.id AS wid FROM t JOIN u ON t.k = u.k AND t.v < u.v RIGHT JOIN w ON w.id = t.id

-- case: inner_non_equi_then_full_join
SELECT t.id AS tid, u.id AS uid, w.id AS wid FROM t JOIN u ON t.k = u.k AND t.v < u.v FULL JOIN w ON w.id = u.k

-- case: inner_inequality_then_left_join
SELECT t.id AS tid, u.id AS uid, w.id AS wid FROM t JOIN u ON t.v > u.v LEFT JOIN w ON w.id = u.k

-- case: left_then_inner_join
SELECT t.id AS tid, u.id AS uid, w.id AS wid FROM t LEFT JOIN u ON t.k = u.k JOIN w ON w.id = t.id

-- case: left_then_left_join
SELECT t.id AS tid, u.id AS uid, w.id AS wid FROM t LEFT JOIN u ON t.k = u.k LEFT JOIN w ON w.id = u.k

-- case: full_then_full_join
SELECT t.id AS tid, u.id AS uid, w.id AS wid FROM t FULL JOIN u ON t.k = u.k FULL JOIN w ON w.id = coalesce(t.k, u.k)

-- case: self_join
SELECT a.id AS aid, b.id AS bid FROM t a JOIN t b ON a.k = b.k AND a.id < b.id

-- case: self_left_join_prev
SELECT a.id AS aid, b.id AS bid FROM t a LEFT JOIN t b ON b.id = a.id - 1

-- case: join_empty_table_inner
SELECT t.id AS tid FROM t JOIN e ON t.k = e.k

-- case: join_empty_table_left
SELECT t.id AS tid, e.v AS ev FROM t LEFT JOIN e ON t.k = e.k

-- case: join_empty_table_right
SELECT t.id AS tid, e.id AS eid FROM e LEFT JOIN t ON t.k = e.k

-- case: join_empty_table_full
SELECT t.id AS tid, e.id AS eid FROM t FULL JOIN e ON t.k = e.k

-- case: join_on_expression_keys
SELECT t.id AS tid, u.id AS uid FROM t JOIN u ON t.k + 1 = u.k

-- case: join_on_mod_key
SELECT t.id AS tid, u.id AS uid FROM t JOIN u ON t.v % 3 = u.v % 3

-- case: join_key_types_int_bigint
SELECT t.id AS tid, p.q AS pq FROM t JOIN p ON t.k = p.k

-- case: join_key_decimal_vs_int
SELECT w.id AS wid, t.id AS tid FROM w JOIN t ON w.d0 = t.k

-- case: join_string_keys
SELECT t.id AS tid, u.id AS uid FROM t JOIN u ON t.s = u.s

-- case: join_then_group
SELECT t.k AS k, count(*) AS n, sum(u.v) AS su FROM t JOIN u ON t.k = u.k GROUP BY t.k

-- case: left_join_then_group_count
SELECT t.id AS tid, count(u.id) AS nu FROM t LEFT JOIN u ON t.k = u.k GROUP BY t.id

-- case: comma_join_where
SELECT t.id AS tid, u.id AS uid FROM t, u WHERE t.k = u.k AND u.v > 10

-- case: comma_join_three
SELECT t.id AS tid, u.id AS uid, p.q AS pq FROM t, u, p WHERE t.k = u.k AND p.k = u.k

-- case: comma_join_cross
SELECT count(*) AS n FROM t, one, u

-- case: comma_join_with_or
SELECT t.id AS tid, u.id AS uid FROM t, u WHERE (t.k = u.k AND t.v = 10) OR (t.k = u.k AND u.v = 3)

-- case: join_derived_tables
SELECT a.k AS k, a.sv AS sv, b.su AS su FROM (SELECT k, sum(v) AS sv FROM t GROUP BY k) a JOIN (SELECT k, sum(v) AS su FROM u GROUP BY k) b ON a.k = b.k

-- case: join_qualified_upper_case
SELECT T.K AS k, U.V AS uv FROM t AS T JOIN u AS U ON T.K = U.K

-- case: join_alias_shadowing_table
SELECT u.id AS a, t.id AS b FROM t AS u JOIN u AS t ON u.k = t.k

-- case: join_three_way_mixed
SELECT t.id AS tid, u.id AS uid, p.q AS pq FROM t LEFT JOIN u ON t.k = u.k RIGHT JOIN p ON p.k = t.k

-- case: semi_join_exists_before_right_join
SELECT t.id AS tid, w.id AS wid FROM t RIGHT JOIN w ON w.id = t.id WHERE EXISTS (SELECT 1 FROM u WHERE u.k = t.k)

-- case: semi_join_in_before_full_join
SELECT t.id AS tid, w.id AS wid FROM t FULL JOIN w ON w.id = t.id WHERE t.k IN (SELECT k FROM u)

-- case: exists_then_right_join_derived
SELECT a.id AS aid, w.id AS wid FROM (SELECT * FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.k = t.k)) a RIGHT JOIN w ON w.id = a.id
