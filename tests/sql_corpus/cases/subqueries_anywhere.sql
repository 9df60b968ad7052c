-- Subqueries under NOT, OR and CASE, in the select list, and ANY/ALL, where SQL's three values
-- show: an IN is NULL when its left side is NULL (over rows) or when nothing matches and the
-- subquery has a NULL. u.k and u.v hold NULLs; t.k and t.v too.

-- case: not_in_under_or_null_on_both_sides
SELECT id FROM t WHERE NOT (k IN (SELECT k FROM u)) OR id < 3

-- case: not_in_under_or_no_null_in_subquery
SELECT id FROM t WHERE NOT (k IN (SELECT k FROM u WHERE k IS NOT NULL)) OR id = 12

-- case: in_under_or_correlated
SELECT id FROM t WHERE v IN (SELECT u.v FROM u WHERE u.k = t.k) OR id > 10

-- case: not_in_select_list_correlated
SELECT id, v NOT IN (SELECT u.v FROM u WHERE u.k = t.k) AS f FROM t

-- case: in_is_unknown
SELECT id, (k IN (SELECT k FROM u)) IS NULL AS unknown FROM t

-- case: exists_under_case
SELECT id, CASE WHEN EXISTS (SELECT 1 FROM u WHERE u.k = t.k) THEN 'y' ELSE 'n' END AS e FROM t

-- case: not_exists_under_or
SELECT id FROM t WHERE NOT EXISTS (SELECT 1 FROM u WHERE u.k = t.k AND u.v > 60) OR id = 1

-- case: exists_in_select_list_empty_subquery
SELECT id, EXISTS (SELECT 1 FROM e WHERE e.k = t.k) AS e FROM t

-- case: any_correlated_inequality
SELECT id FROM t WHERE v > ANY (SELECT u.v FROM u WHERE u.k = t.k)

-- case: all_correlated_with_nulls
SELECT id FROM t WHERE v >= ALL (SELECT u.v FROM u WHERE u.k = t.k)

-- case: not_all_under_or
SELECT id FROM t WHERE NOT (v < ALL (SELECT v FROM u WHERE v IS NOT NULL)) OR id = 3

-- case: any_in_case_select_list
SELECT id, CASE WHEN k = ANY (SELECT k FROM u) THEN 1 ELSE 0 END AS m FROM t

-- case: in_subquery_under_or_in_having
SELECT g, count(*) AS n FROM t GROUP BY g HAVING max(k) IN (SELECT k FROM u) OR g IS NULL

-- case: exists_same_key_other_value
SELECT id FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.k = t.k AND u.v <> t.v)

-- case: not_exists_same_key_other_value
SELECT id FROM t WHERE NOT EXISTS (SELECT 1 FROM u WHERE u.k = t.k AND u.v <> t.v)

-- case: exists_same_key_larger
SELECT id FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.k = t.k AND u.v > t.v)

-- case: not_exists_same_key_at_most
SELECT id FROM t WHERE NOT EXISTS (SELECT 1 FROM u WHERE t.k = u.k AND t.v >= u.v)

-- case: exists_smaller_anywhere
SELECT id FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.v < t.v - 60)

-- case: exists_other_value_under_or
SELECT id FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.k = t.k AND u.v <> t.v) OR id = 8
