-- Three-valued logic: NULLs in comparisons, AND/OR/NOT, IS [NOT] TRUE/FALSE/NULL, IS DISTINCT FROM.

-- case: is_true_with_null
SELECT id, (x > 1) IS TRUE AS it FROM t

-- case: is_not_true_with_null
SELECT id, (x > 1) IS NOT TRUE AS int FROM t

-- case: is_false_with_null
SELECT id, (x > 1) IS FALSE AS isf FROM t

-- case: is_not_false_with_null
SELECT id, (x > 1) IS NOT FALSE AS inf FROM t

-- case: is_true_in_where
SELECT id FROM t WHERE (v > 5) IS NOT TRUE

-- case: bool_column_is_tests
SELECT id, b IS TRUE AS a, b IS NOT TRUE AS c, b IS FALSE AS e, b IS NOT FALSE AS f, b IS NULL AS n FROM t

-- case: and_or_with_nulls
SELECT id, (v > 0) AND (x > 0) AS a, (v > 0) OR (x > 0) AS o, NOT (v > 0) AS n FROM t

-- case: null_and_false
SELECT id, b AND NULL AS a, b OR NULL AS o FROM t

-- case: where_null_comparison_drops
SELECT id FROM t WHERE v = NULL

-- case: where_not_of_null
SELECT id FROM t WHERE NOT (v > 0)

-- case: is_null_is_not_null
SELECT id, k IS NULL AS kn, v IS NOT NULL AS vn FROM t

-- case: is_distinct_from
SELECT id, k IS DISTINCT FROM v AS dis, k IS NOT DISTINCT FROM v AS ndis FROM t

-- case: is_distinct_from_null_literal
SELECT id, k IS DISTINCT FROM NULL AS a, v IS NOT DISTINCT FROM NULL AS b FROM t

-- case: is_distinct_from_in_where
SELECT id FROM t WHERE s IS DISTINCT FROM 'apple'

-- case: coalesce_basic
SELECT id, coalesce(v, k, -1) AS c, coalesce(s, g, '?') AS cs FROM t

-- case: coalesce_mixed_numeric
SELECT id, coalesce(d, x) AS c1, coalesce(v, d) AS c2 FROM t

-- case: coalesce_decimal_scales
SELECT id, coalesce(d2, d4) AS c FROM w

-- case: nullif_basic
SELECT id, nullif(v, 0) AS a, nullif(s, 'apple') AS b, nullif(k, v) AS c FROM t

-- case: nullif_is_its_first_arguments_type
SELECT id, nullif(v, 2.5) AS a, nullif(d, 2.5e0) AS b, nullif(1.5, d) AS c FROM t

-- case: nullif_of_null
SELECT id, nullif(NULL, v) AS a, nullif(v, NULL) AS b, nullif(s, NULL) AS c FROM t

-- case: case_searched
SELECT id, CASE WHEN v > 5 THEN 'big' WHEN v > 0 THEN 'small' WHEN v IS NULL THEN 'none' ELSE 'neg' END AS c FROM t

-- case: case_simple
SELECT id, CASE k WHEN 1 THEN 'one' WHEN 2 THEN 'two' ELSE 'other' END AS c FROM t

-- case: case_simple_null_operand
SELECT id, CASE v WHEN NULL THEN 'null' ELSE 'not' END AS c FROM t

-- case: case_no_else_is_null
SELECT id, CASE WHEN b THEN v END AS c FROM t

-- case: case_mixed_result_types
SELECT id, CASE WHEN v > 0 THEN d ELSE v END AS c FROM t

-- case: case_decimal_scales
SELECT id, CASE WHEN id < 5 THEN d2 ELSE d4 END AS c FROM w

-- case: case_double_int
SELECT id, CASE WHEN v > 0 THEN x ELSE 0 END AS c FROM t

-- case: case_in_aggregate
SELECT sum(CASE WHEN b THEN v ELSE 0 END) AS sb, count(CASE WHEN b THEN 1 END) AS cb FROM t

-- case: case_nested
SELECT id, CASE WHEN k IS NULL THEN 'nk' ELSE CASE WHEN v IS NULL THEN 'nv' ELSE 'ok' END END AS c FROM t

-- case: not_in_list_with_null
SELECT id FROM t WHERE v NOT IN (1, 2, NULL)

-- case: in_list_with_null
SELECT id, v IN (10, NULL) AS m FROM t

-- case: not_in_list_null_operand
SELECT id, v NOT IN (10, 5) AS m FROM t

-- case: between_with_null
SELECT id, v BETWEEN 0 AND 5 AS bt, v NOT BETWEEN 0 AND 5 AS nbt FROM t

-- case: between_symmetric_bounds
SELECT id FROM t WHERE v BETWEEN 5 AND 0

-- case: comparison_chain_nulls
SELECT id, v > k AS gt, v >= k AS ge, v <> k AS ne FROM t

-- case: bool_equals_bool
SELECT id, b = (v > 0) AS e FROM t

-- case: where_bool_column
SELECT id FROM t WHERE b

-- case: where_not_bool_column
SELECT id FROM t WHERE NOT b

-- case: null_in_arithmetic_comparison
SELECT id, (v + NULL) > 0 AS a, NOT (v IS NULL) AS b FROM t

-- case: coalesce_all_null
SELECT id, coalesce(CAST(NULL AS INTEGER), k, v) AS c FROM t WHERE k IS NULL

-- case: where_or_with_null_branch
SELECT id FROM t WHERE v > 100 OR NULL

-- case: where_and_with_null_branch
SELECT id FROM t WHERE v > 0 AND NULL IS NULL
