-- ORDER BY (DuckDB's default: NULLS LAST both ways), LIMIT and OFFSET. Every ordered case orders
-- by a total order, so one answer is right.

-- case: order_by_asc_nulls_default
-- ordered
SELECT id, v FROM t ORDER BY v, id

-- case: order_by_desc_nulls_default
-- ordered
SELECT id, v FROM t ORDER BY v DESC, id

-- case: order_by_desc_nulls_first
-- ordered
SELECT id, v FROM t ORDER BY v DESC NULLS FIRST, id

-- case: order_by_asc_nulls_first
-- ordered
SELECT id, v FROM t ORDER BY v NULLS FIRST, id

-- case: order_by_string_collation
-- ordered
SELECT id, s FROM t ORDER BY s, id

-- case: order_by_unicode
-- ordered
SELECT id, s FROM n ORDER BY s, id

-- case: order_by_decimal_mixed
-- ordered
SELECT id, d2 FROM w ORDER BY d2 DESC, id

-- case: order_by_double_negatives
-- ordered
SELECT id, x FROM t ORDER BY x, id

-- case: order_by_expression
-- ordered
SELECT id FROM t ORDER BY v % 3, id

-- case: order_by_position
-- ordered
SELECT id, v FROM t ORDER BY 2 DESC, 1

-- case: order_by_alias
-- ordered
SELECT id, -v AS nv FROM t ORDER BY nv, id

-- case: order_by_not_selected
-- ordered
SELECT id FROM t ORDER BY s DESC, id

-- case: order_by_bool
-- ordered
SELECT id, b FROM t ORDER BY b, id

-- case: order_by_date_desc
-- ordered
SELECT id, dt FROM t ORDER BY dt DESC, id

-- case: limit_basic
-- ordered
SELECT id FROM t ORDER BY id LIMIT 3

-- case: limit_offset
-- ordered
SELECT id FROM t ORDER BY id LIMIT 3 OFFSET 4

-- case: offset_past_end
-- ordered
SELECT id FROM t ORDER BY id LIMIT 5 OFFSET 100

-- case: limit_zero
SELECT id FROM t LIMIT 0

-- case: limit_without_order_count
SELECT count(*) AS n FROM (SELECT id FROM t LIMIT 4) q

-- case: order_by_limit_with_ties_in_other_column
-- ordered
SELECT o, id FROM t ORDER BY o DESC, id DESC LIMIT 4

-- case: order_by_in_derived_then_limit
-- ordered
SELECT id FROM (SELECT id, v FROM t ORDER BY v DESC NULLS LAST, id LIMIT 5) q ORDER BY id

-- case: order_by_grouped_key
-- ordered
SELECT k, count(*) AS n FROM t GROUP BY k ORDER BY k

-- case: order_by_grouped_key_desc
-- ordered
SELECT k, count(*) AS n FROM t GROUP BY k ORDER BY k DESC

-- case: order_by_case_expression
-- ordered
SELECT id FROM t ORDER BY CASE WHEN v IS NULL THEN 0 ELSE 1 END, id

-- case: order_by_qualified_join
-- ordered
SELECT t.id AS tid, u.id AS uid FROM t JOIN u ON t.k = u.k ORDER BY t.id, u.id

-- case: fetch_first_rows
-- ordered
SELECT id FROM t ORDER BY id DESC FETCH FIRST 2 ROWS ONLY
