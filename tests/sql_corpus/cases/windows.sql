-- Window functions: ranking, offsets, frames (the default RANGE frame shares a value among
-- peers), partitions with NULL keys, windows over aggregates.

-- case: row_number_total_order
SELECT id, row_number() OVER (ORDER BY id) AS rn FROM t

-- case: row_number_partitioned
SELECT id, row_number() OVER (PARTITION BY g ORDER BY id) AS rn FROM t

-- case: row_number_desc
SELECT id, row_number() OVER (ORDER BY v DESC, id) AS rn FROM t

-- case: rank_with_ties
SELECT id, rank() OVER (ORDER BY o) AS r FROM t

-- case: dense_rank_with_ties
SELECT id, dense_rank() OVER (ORDER BY o) AS r FROM t

-- case: rank_partitioned_nulls
SELECT id, rank() OVER (PARTITION BY g ORDER BY v) AS r FROM t

-- case: rank_desc_nulls
SELECT id, rank() OVER (ORDER BY v DESC) AS r FROM t

-- case: percent_rank
SELECT id, percent_rank() OVER (ORDER BY o) AS pr FROM t

-- case: cume_dist
SELECT id, cume_dist() OVER (ORDER BY o) AS cd FROM t

-- case: ntile_4
SELECT id, ntile(4) OVER (ORDER BY id) AS q FROM t

-- case: ntile_5_uneven
SELECT id, ntile(5) OVER (ORDER BY id) AS q FROM t

-- case: lag_default
SELECT id, lag(v) OVER (ORDER BY id) AS prev FROM t

-- case: lag_offset_default_value
SELECT id, lag(v, 2, -1) OVER (ORDER BY id) AS prev2 FROM t

-- case: lead_partitioned
SELECT id, lead(v) OVER (PARTITION BY g ORDER BY id) AS nxt FROM t

-- case: first_value_partitioned
SELECT id, first_value(v) OVER (PARTITION BY g ORDER BY id) AS fv FROM t

-- case: last_value_default_frame
SELECT id, last_value(v) OVER (PARTITION BY g ORDER BY id) AS lv FROM t

-- case: last_value_full_frame
SELECT id, last_value(v) OVER (PARTITION BY g ORDER BY id ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS lv FROM t

-- case: nth_value
SELECT id, nth_value(v, 2) OVER (ORDER BY id) AS nv FROM t

-- case: running_sum_range_peers
SELECT id, o, sum(v) OVER (ORDER BY o) AS running FROM t

-- case: running_sum_rows_unique
SELECT id, sum(v) OVER (ORDER BY id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running FROM t

-- case: running_count_range_peers
SELECT id, count(*) OVER (ORDER BY o) AS c FROM t

-- case: rows_between_moving
SELECT id, sum(v) OVER (ORDER BY id ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING) AS s3 FROM t

-- case: rows_between_following_only
SELECT id, max(v) OVER (ORDER BY id ROWS BETWEEN 1 FOLLOWING AND 3 FOLLOWING) AS mx FROM t

-- case: range_between_numeric
SELECT id, sum(v) OVER (ORDER BY o RANGE BETWEEN 1 PRECEDING AND CURRENT ROW) AS s FROM t

-- case: avg_over_partition_no_order
SELECT id, avg(v) OVER (PARTITION BY g) AS a FROM t

-- case: sum_over_empty_window
SELECT id, sum(v) OVER () AS total, count(*) OVER () AS n FROM t

-- case: window_decimal_sum
SELECT id, sum(d) OVER (PARTITION BY g ORDER BY id) AS s FROM t

-- case: window_min_max_strings
SELECT id, min(s) OVER (PARTITION BY g) AS mn, max(s) OVER (PARTITION BY g) AS mx FROM t

-- case: window_over_group_by_percent
SELECT g, sum(v) * 100 / sum(sum(v)) OVER () AS pct FROM t GROUP BY g

-- case: window_over_group_by_partition
SELECT c, y, sum(amt) * 100 / sum(sum(amt)) OVER (PARTITION BY c) AS pct FROM p GROUP BY c, y

-- case: window_rank_of_aggregate
SELECT g, sum(v) AS sv, rank() OVER (ORDER BY sum(v) DESC) AS r FROM t GROUP BY g

-- case: window_partition_by_expression
SELECT id, count(*) OVER (PARTITION BY v % 2) AS c FROM t

-- case: window_in_derived_then_filter
SELECT id, rn FROM (SELECT id, row_number() OVER (PARTITION BY g ORDER BY v DESC, id) AS rn FROM t) q WHERE rn = 1

-- case: two_windows_different_orders
SELECT id, row_number() OVER (ORDER BY id) AS a, row_number() OVER (ORDER BY id DESC) AS b FROM t

-- case: window_order_by_nulls_first
SELECT id, row_number() OVER (ORDER BY v NULLS FIRST, id) AS rn FROM t

-- case: window_over_empty_table
SELECT id, row_number() OVER (ORDER BY id) AS rn FROM e

-- case: window_with_where
SELECT id, sum(v) OVER (PARTITION BY k ORDER BY id) AS s FROM t WHERE v > 0

-- case: lag_over_dates
SELECT id, dt - lag(dt) OVER (ORDER BY id) AS gap FROM t

-- case: window_count_distinct_groups
SELECT g, count(*) AS n, count(*) OVER () AS groups FROM t GROUP BY g

-- case: qualify_like_filter
SELECT id, g FROM (SELECT id, g, rank() OVER (PARTITION BY g ORDER BY o) AS r FROM t) q WHERE r <= 2

-- case: window_ordered_output
-- ordered
SELECT id, sum(v) OVER (ORDER BY id) AS s FROM t ORDER BY id DESC

-- case: min_rows_preceding_only
SELECT id, min(v) OVER (PARTITION BY g ORDER BY id ROWS BETWEEN 2 PRECEDING AND 1 PRECEDING) AS m FROM t

-- case: max_rows_following_only
SELECT id, max(v) OVER (ORDER BY id ROWS BETWEEN 1 FOLLOWING AND 3 FOLLOWING) AS m FROM t

-- case: min_rows_to_unbounded_following
SELECT id, min(v) OVER (ORDER BY id ROWS BETWEEN 1 PRECEDING AND UNBOUNDED FOLLOWING) AS m FROM t

-- case: max_rows_unbounded_to_following
SELECT id, max(d) OVER (PARTITION BY g ORDER BY id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 FOLLOWING) AS m FROM t

-- case: min_max_rows_around_strings
SELECT id, min(s) OVER (ORDER BY id ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING) AS lo, max(s) OVER (ORDER BY id ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING) AS hi FROM t
