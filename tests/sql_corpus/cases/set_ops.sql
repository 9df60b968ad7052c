-- Set operations: UNION (distinct) and UNION ALL, INTERSECT [ALL], EXCEPT [ALL], with NULLs
-- (NULLs are equal for set operations), mixed types, and ORDER BY / LIMIT over the whole.

-- case: union_all_basic
SELECT k FROM t UNION ALL SELECT k FROM u

-- case: union_distinct
SELECT k FROM t UNION SELECT k FROM u

-- case: union_distinct_two_columns
SELECT k, s FROM t UNION SELECT k, s FROM u

-- case: intersect_distinct
SELECT k FROM t INTERSECT SELECT k FROM u

-- case: intersect_all
SELECT k FROM t INTERSECT ALL SELECT k FROM u

-- case: except_distinct
SELECT k FROM t EXCEPT SELECT k FROM u

-- case: except_all
SELECT k FROM t EXCEPT ALL SELECT k FROM u

-- case: except_all_dups
SELECT g FROM t EXCEPT ALL SELECT g FROM t WHERE id <= 4

-- case: union_mixed_int_decimal
SELECT v AS a FROM t UNION ALL SELECT d AS a FROM u

-- case: union_mixed_decimal_scales
SELECT d2 AS a FROM w UNION ALL SELECT d4 AS a FROM w

-- case: union_int_bigint
SELECT k AS a FROM t UNION ALL SELECT k AS a FROM p

-- case: union_with_empty
SELECT k FROM t UNION ALL SELECT k FROM e

-- case: union_order_limit
-- ordered
SELECT id AS i FROM t UNION ALL SELECT id AS i FROM u ORDER BY i DESC LIMIT 5

-- case: union_in_derived_aggregate
SELECT count(*) AS n, count(DISTINCT k) AS dk FROM (SELECT k FROM t UNION ALL SELECT k FROM u) q

-- case: union_three_branches
SELECT 'a' AS src, count(*) AS n FROM t UNION ALL SELECT 'b' AS src, count(*) AS n FROM u UNION ALL SELECT 'c' AS src, count(*) AS n FROM e

-- case: union_chain_precedence
SELECT k FROM t UNION ALL SELECT k FROM u EXCEPT SELECT k FROM p

-- case: intersect_precedence
SELECT k FROM t UNION SELECT k FROM u INTERSECT SELECT k FROM p

-- case: set_op_column_names_from_first
SELECT k AS first_name FROM t UNION SELECT v AS other FROM u

-- case: union_strings_unicode
SELECT s FROM t UNION SELECT s FROM n

-- case: except_all_null_rows
SELECT k, g FROM t EXCEPT ALL SELECT k, g FROM t WHERE v > 0

-- case: intersect_all_null_duplicates
SELECT k FROM t INTERSECT ALL SELECT k FROM u

-- case: except_all_nested
(SELECT g FROM t EXCEPT ALL SELECT g FROM t WHERE k > 3) EXCEPT ALL SELECT 'a'

-- case: intersect_all_of_except_all
SELECT k FROM t INTERSECT ALL (SELECT k FROM u EXCEPT ALL SELECT k FROM u WHERE v > 60)
