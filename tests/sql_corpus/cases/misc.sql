-- CTEs, derived tables, DISTINCT, SELECT *, literals, names, and queries without FROM.

-- case: cte_basic
WITH a AS (SELECT k, sum(v) AS s FROM t GROUP BY k) SELECT k, s FROM a WHERE s > 0

-- case: cte_two_referencing
WITH a AS (SELECT k, v FROM t WHERE v > 0), b AS (SELECT k, count(*) AS n FROM a GROUP BY k) SELECT k, n FROM b

-- case: cte_used_twice
WITH a AS (SELECT k, v FROM t) SELECT x.k AS k1, y.k AS k2 FROM a x JOIN a y ON x.v = y.v + 3

-- case: cte_shadows_table
WITH u AS (SELECT k FROM t WHERE k > 3) SELECT k FROM u

-- case: cte_with_column_list
WITH a(kk, vv) AS (SELECT k, v FROM t) SELECT kk, vv FROM a WHERE vv IS NOT NULL

-- case: cte_in_subquery
SELECT id FROM t WHERE k IN (WITH c AS (SELECT k FROM u WHERE v > 0) SELECT k FROM c)

-- case: nested_cte
WITH a AS (WITH b AS (SELECT k FROM t) SELECT k FROM b WHERE k > 1) SELECT count(*) AS n FROM a

-- case: derived_table_nested
SELECT q.k AS k FROM (SELECT k FROM (SELECT k, v FROM t WHERE v > 0) r WHERE k > 1) q

-- case: derived_table_column_alias_list
SELECT a, b FROM (SELECT k, v FROM t) AS q(a, b) WHERE b > 0

-- case: select_star
SELECT * FROM u

-- case: select_star_from_join
SELECT u.*, one.id AS oid FROM one JOIN u ON u.id = 101

-- case: select_table_star
SELECT u.* FROM t JOIN u ON t.k = u.k WHERE t.id = 1

-- case: select_star_exclude_like
SELECT * FROM (SELECT id, k FROM t) q WHERE k > 2

-- case: select_literal_only
SELECT 1 AS a, 'b' AS b, NULL AS c

-- case: select_no_from_expression
SELECT 1 + 2 AS a, 'x' || 'y' AS b

-- case: select_from_empty_table
SELECT * FROM e

-- case: select_expressions_from_empty
SELECT k + 1 AS k1, upper(s) AS us FROM e

-- case: where_false
SELECT id FROM t WHERE 1 = 0

-- case: where_true_constant
SELECT count(*) AS n FROM t WHERE true

-- case: quoted_identifier_alias
SELECT id AS "Mixed Case", v AS "select" FROM t

-- case: alias_same_as_column
SELECT v AS k, k AS v FROM t

-- case: column_name_dunder
SELECT id AS __s1, v AS __index_level_0__ FROM t

-- case: distinct_star
SELECT DISTINCT * FROM (SELECT k, g FROM t) q

-- case: table_alias_case_insensitive
SELECT X.id AS id FROM t x WHERE x.v > 0

-- case: values_clause
SELECT a, b FROM (VALUES (1, 'x'), (2, NULL), (NULL, 'z')) AS v(a, b)

-- case: in_values_subquery
SELECT id FROM t WHERE k IN (SELECT a FROM (VALUES (1), (3), (NULL)) v(a))

-- case: group_by_all_columns_distinct
SELECT k, g FROM t GROUP BY k, g HAVING count(*) = 1

-- case: many_outputs_same_names_different_case
SELECT id AS a, v AS b, k AS c FROM t
