-- Dates and timestamps: parts, arithmetic with intervals and integers, truncation, month ends.

-- case: extract_parts
SELECT id, extract(year FROM dt) AS y, extract(month FROM dt) AS m, extract(day FROM dt) AS d FROM t

-- case: extract_parts_month_ends
SELECT id, extract(year FROM dt) AS y, extract(month FROM dt) AS m, extract(day FROM dt) AS d FROM n

-- case: date_part_function
SELECT id, date_part('year', dt) AS y, date_part('quarter', dt) AS q FROM t

-- case: extract_dow_doy
SELECT id, extract(dow FROM dt) AS dow, extract(doy FROM dt) AS doy FROM n

-- case: extract_week
SELECT id, extract(week FROM dt) AS wk FROM n

-- case: extract_timestamp_parts
SELECT id, extract(hour FROM ts) AS h, extract(minute FROM ts) AS mi, extract(second FROM ts) AS sec FROM t

-- case: year_month_day_functions
SELECT id, year(dt) AS y, month(dt) AS m, day(dt) AS d FROM t

-- case: date_minus_date
SELECT id, dt - DATE '2024-01-01' AS days FROM t

-- case: date_minus_date_columns
SELECT t.id AS tid, t.dt - n.dt AS days FROM t JOIN n ON t.id = n.id

-- case: date_plus_integer
SELECT id, dt + 1 AS next_day, dt - 31 AS month_ago FROM t

-- case: date_plus_interval_day
SELECT id, dt + INTERVAL '1' DAY AS nd FROM t

-- case: date_plus_interval_month_end
SELECT id, dt + INTERVAL '1' MONTH AS nm FROM n

-- case: date_plus_interval_3_month
SELECT id, dt + INTERVAL 3 MONTH AS nm FROM n

-- case: date_plus_interval_string_month
SELECT id, dt + INTERVAL '3 month' AS nm FROM n

-- case: date_minus_interval_year
SELECT id, dt - INTERVAL '1' YEAR AS py FROM n

-- case: negative_interval
SELECT id, dt + INTERVAL '-1' MONTH AS pm FROM n

-- case: negative_interval_days
SELECT id, dt + INTERVAL '-10 days' AS p FROM n

-- case: interval_fractional_day
SELECT id, ts + INTERVAL '1.5' DAY AS later FROM n

-- case: interval_fractional_day_string
SELECT id, ts + INTERVAL '1.5 days' AS later FROM n

-- case: timestamp_plus_hours
SELECT id, ts + INTERVAL '25' HOUR AS later FROM t

-- case: timestamp_minus_timestamp_epoch
SELECT id, epoch(ts) AS ep FROM t

-- case: date_trunc_month
SELECT id, date_trunc('month', dt) AS m FROM n

-- case: date_trunc_year_timestamp
SELECT id, date_trunc('year', ts) AS yr FROM t

-- case: date_trunc_hour
SELECT id, date_trunc('hour', ts) AS h FROM n

-- case: date_trunc_quarter_group
SELECT date_trunc('quarter', dt) AS q, count(*) AS n FROM t GROUP BY date_trunc('quarter', dt)

-- case: last_day_function
SELECT id, last_day(dt) AS ld FROM n

-- case: date_compare_string_literal
SELECT id FROM t WHERE dt > '2024-02-01'

-- case: date_compare_date_literal
SELECT id FROM t WHERE dt >= DATE '2024-02-29' AND dt < DATE '2024-07-01'

-- case: timestamp_compare
SELECT id FROM t WHERE ts > TIMESTAMP '2024-02-29 23:59:58'

-- case: date_vs_timestamp_compare
SELECT id FROM t WHERE ts >= DATE '2024-02-29'

-- case: cast_timestamp_to_date
SELECT id, CAST(ts AS DATE) AS d FROM t

-- case: cast_date_to_timestamp
SELECT id, CAST(dt AS TIMESTAMP) AS ts2 FROM t

-- case: cast_string_to_date
SELECT CAST('2024-02-29' AS DATE) AS d, DATE '2000-02-29' AS d2 FROM one

-- case: cast_date_to_string
SELECT id, CAST(dt AS VARCHAR) AS s FROM t

-- case: group_by_year_month
SELECT extract(year FROM dt) AS y, extract(month FROM dt) AS m, count(*) AS n FROM t GROUP BY 1, 2

-- case: date_diff_days
SELECT id, date_diff('day', DATE '2024-01-01', dt) AS dd FROM t

-- case: date_diff_month
SELECT id, date_diff('month', DATE '2024-01-31', dt) AS dm FROM n

-- case: make_date_fn
SELECT make_date(2024, 2, 29) AS d FROM one

-- case: strftime_fn
SELECT id, strftime(dt, '%Y/%m/%d') AS f FROM t

-- case: min_max_date_grouped
SELECT g, min(dt) AS first_day, max(ts) AS last_ts FROM t GROUP BY g

-- case: dates_in_window_order
SELECT id, row_number() OVER (ORDER BY dt, id) AS rn FROM t

-- case: current_date_not_null
SELECT current_date IS NOT NULL AS ok FROM one
