-- Aggregates: over all rows, per group (NULL keys form one group), on empty tables (one row of
-- NULLs and zero counts without GROUP BY, no rows with it), on all-NULL groups; HAVING;
-- aggregates inside expressions; ORDER BY an aggregate.

-- case: count_star_and_column
SELECT count(*) AS n, count(k) AS nk, count(v) AS nv, count(s) AS ns FROM t

-- case: count_distinct
SELECT count(DISTINCT k) AS dk, count(DISTINCT s) AS ds, count(DISTINCT g) AS dg FROM t

-- case: sum_avg_min_max_int
SELECT sum(v) AS s, avg(v) AS a, min(v) AS mn, max(v) AS mx FROM t

-- case: sum_avg_min_max_decimal
SELECT sum(d) AS s, avg(d) AS a, min(d) AS mn, max(d) AS mx FROM t

-- case: sum_decimal_scales
SELECT sum(d0) AS s0, sum(d2) AS s2, sum(d4) AS s4, sum(d10) AS s10 FROM w

-- case: avg_decimal_scales
SELECT avg(d0) AS a0, avg(d2) AS a2, avg(d4) AS a4 FROM w

-- case: sum_avg_double
SELECT sum(x) AS s, avg(x) AS a, min(x) AS mn, max(x) AS mx FROM t

-- case: min_max_strings_dates
SELECT min(s) AS mns, max(s) AS mxs, min(dt) AS mnd, max(dt) AS mxd, min(ts) AS mnt, max(ts) AS mxt FROM t

-- case: min_max_bool
SELECT min(b) AS mn, max(b) AS mx FROM t

-- case: stddev_variance
SELECT stddev(x) AS sd, stddev_samp(v) AS sds, stddev_pop(v) AS sdp, variance(x) AS var, var_pop(v) AS vp FROM t

-- case: stddev_single_row_group
SELECT k, stddev_samp(v) AS sd, var_samp(v) AS vs FROM t GROUP BY k

-- case: bool_and_or
SELECT bool_and(b) AS ba, bool_or(b) AS bo FROM t

-- case: bool_and_or_grouped
SELECT g, bool_and(v > 0) AS allpos, bool_or(v > 5) AS anybig FROM t GROUP BY g

-- case: string_agg_ordered
SELECT string_agg(s, ',' ORDER BY s) AS sa FROM t

-- case: string_agg_grouped_ordered
SELECT g, string_agg(s, '|' ORDER BY id) AS sa FROM t GROUP BY g

-- case: group_by_null_key
SELECT k, count(*) AS n, sum(v) AS s FROM t GROUP BY k

-- case: group_by_two_keys
SELECT k, g, count(*) AS n FROM t GROUP BY k, g

-- case: group_by_expression
SELECT v > 0 AS pos, count(*) AS n FROM t GROUP BY v > 0

-- case: group_by_position
SELECT g, count(*) AS n FROM t GROUP BY 1

-- case: group_by_alias
SELECT upper(g) AS ug, count(*) AS n FROM t GROUP BY ug

-- case: group_by_column_not_selected
SELECT count(*) AS n, sum(v) AS s FROM t GROUP BY g

-- case: group_by_decimal_key
SELECT d2, count(*) AS n FROM w GROUP BY d2

-- case: group_by_double_key
SELECT x, count(*) AS n FROM t GROUP BY x

-- case: group_by_date_key
SELECT dt, count(*) AS n FROM t GROUP BY dt

-- case: group_by_bool_key
SELECT b, count(*) AS n, sum(v) AS s FROM t GROUP BY b

-- case: all_null_group
SELECT g, sum(v) AS s, avg(v) AS a, min(s) AS mn, count(v) AS c FROM t WHERE k IS NULL OR k = 2 GROUP BY g

-- case: aggregates_on_empty_no_group
SELECT count(*) AS n, count(k) AS nk, sum(v) AS s, avg(v) AS a, min(s) AS mn, max(dt) AS mx FROM e

-- case: aggregates_on_empty_decimal
SELECT sum(d) AS s, avg(d) AS a, max(d) AS mx FROM e

-- case: aggregates_on_empty_grouped
SELECT k, count(*) AS n, sum(v) AS s FROM e GROUP BY k

-- case: aggregates_filtered_to_nothing
SELECT count(*) AS n, sum(v) AS s, bool_and(b) AS ba, stddev(x) AS sd FROM t WHERE v > 1000

-- case: count_distinct_on_empty
SELECT count(DISTINCT k) AS dk FROM e

-- case: stddev_on_empty_and_one
SELECT stddev(x) AS sd, variance(x) AS va FROM t WHERE id = 1

-- case: having_basic
SELECT k, sum(v) AS s FROM t GROUP BY k HAVING sum(v) > 3

-- case: having_count
SELECT g, count(*) AS n FROM t GROUP BY g HAVING count(*) >= 3

-- case: having_without_group_by
SELECT sum(v) AS s FROM t HAVING sum(v) > 0

-- case: having_aggregate_not_selected
SELECT g FROM t GROUP BY g HAVING max(v) > 5

-- case: count_distinct_in_expression
SELECT count(DISTINCT k) * 10 + count(*) AS e1, count(DISTINCT g) - 1 AS e2 FROM t

-- case: count_distinct_ratio
SELECT count(DISTINCT k) / count(*) AS r FROM t

-- case: count_distinct_grouped
SELECT g, count(DISTINCT k) AS dk, count(DISTINCT v) AS dv FROM t GROUP BY g

-- case: sum_distinct
SELECT sum(DISTINCT k) AS sk, avg(DISTINCT k) AS ak FROM t

-- case: aggregate_of_expression
SELECT sum(v * 2 + 1) AS a, max(abs(x)) AS b, min(length(s)) AS c FROM t

-- case: expression_of_aggregates
SELECT sum(v) / count(v) AS a, max(v) - min(v) AS r, sum(d) * 2 AS d2 FROM t

-- case: sum_int_type
SELECT sum(v) AS s, sum(k) AS sk FROM t

-- case: avg_int_exact
SELECT g, avg(v) AS a FROM t GROUP BY g

-- case: quantile_cont_median
SELECT quantile_cont(x, 0.5) AS med FROM t

-- case: quantile_cont_grouped
SELECT g, quantile_cont(v, 0.5) AS med FROM t GROUP BY g

-- case: median_function
SELECT median(x) AS med FROM t

-- case: percentile_cont_within_group
SELECT percentile_cont(0.25) WITHIN GROUP (ORDER BY v) AS p25 FROM t

-- case: aggregate_filter_clause
SELECT count(*) FILTER (WHERE v > 0) AS pos, sum(v) FILTER (WHERE b) AS sb FROM t

-- case: non_aggregated_column_without_group_by
-- error
SELECT min(v) AS mn, k FROM t

-- case: non_aggregated_column_not_in_group_by
-- error
SELECT g, k, count(*) AS n FROM t GROUP BY g

-- case: order_by_aggregate
-- ordered
SELECT g, sum(v) AS s FROM t GROUP BY g ORDER BY sum(v) DESC, g

-- case: order_by_aggregate_not_selected
-- ordered
SELECT g FROM t GROUP BY g ORDER BY count(*), g NULLS FIRST

-- case: order_by_aggregate_alias
-- ordered
SELECT k, count(*) AS n FROM t GROUP BY k ORDER BY n DESC, k NULLS LAST

-- case: distinct_basic
SELECT DISTINCT g FROM t

-- case: distinct_two_columns
SELECT DISTINCT k, g FROM t

-- case: distinct_with_nulls
SELECT DISTINCT s FROM t

-- case: distinct_decimal_scales
SELECT DISTINCT d2 FROM w

-- case: distinct_on_expression
SELECT DISTINCT v % 2 AS par FROM t

-- case: count_over_join_group
SELECT u.k AS k, count(t.id) AS n FROM u LEFT JOIN t ON t.k = u.k GROUP BY u.k

-- case: min_max_decimal_mixed_scale_groups
SELECT id % 2 AS par, min(d4) AS mn, max(d2) AS mx FROM w GROUP BY id % 2

-- case: sum_of_decimal_product
SELECT sum(d2 * d4) AS sp FROM w

-- case: sum_of_decimal_product_grouped
SELECT id % 3 AS g3, sum(d2 * d4) AS sp, sum(d0 * d2) AS sq FROM w GROUP BY id % 3

-- case: sum_bigint_column
SELECT sum(id) AS s, sum(big) AS sb FROM h WHERE id >= 3

-- case: any_value_single_group
SELECT g, any_value(g) AS ag FROM t GROUP BY g

-- case: count_star_no_from
SELECT count(*) AS n FROM one

-- case: group_by_having_or
SELECT k, count(*) AS n FROM t GROUP BY k HAVING count(*) > 1 OR k IS NULL

-- case: string_agg_on_empty
SELECT string_agg(s, ',' ORDER BY s) AS sa, count(s) AS n FROM e

-- case: stats_on_all_null_group
SELECT g, stddev(x) AS sd, variance(v) AS va, bool_and(b) AS ba, max(d) AS mx FROM t WHERE id IN (3, 8) GROUP BY g

-- case: min_max_on_empty_strings_dates
SELECT min(s) AS mn, max(ts) AS mx, min(b) AS mb FROM e

-- case: avg_of_empty_group_after_filter
SELECT g, avg(v) FILTER (WHERE v > 1000) AS a, count(*) AS n FROM t GROUP BY g

-- case: percentile_cont_decimal_desc
SELECT g, percentile_cont(0.25) WITHIN GROUP (ORDER BY d DESC) AS p FROM t GROUP BY g

-- case: median_decimal_and_int
SELECT g, median(d) AS md, median(v) AS mv FROM t GROUP BY g

-- case: count_distinct_with_nulls_grouped
SELECT g, count(DISTINCT k) AS n, count(DISTINCT v) FILTER (WHERE v > 0) AS p FROM t GROUP BY g

-- case: sum_distinct_and_avg_distinct
SELECT sum(DISTINCT k) AS s, avg(DISTINCT k) AS a, sum(DISTINCT d) AS sd FROM t
