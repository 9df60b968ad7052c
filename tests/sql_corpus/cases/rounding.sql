-- Rounding: SQL engines (DuckDB, Postgres, Trino, Spark) round decimals half away from zero.

-- case: round_decimal_literal_half
SELECT round(2.25, 1) AS a, round(-2.25, 1) AS b, round(0.125, 2) AS c, round(-0.05, 1) AS d FROM one

-- case: round_decimal_literal_to_int
SELECT round(2.5) AS a, round(-2.5) AS b, round(0.5) AS c, round(1.5) AS d FROM one

-- case: round_decimal_column
SELECT id, round(d2, 1) AS r1, round(d4, 2) AS r2, round(d4, 3) AS r3 FROM w

-- case: round_decimal_column_zero_digits
SELECT id, round(d2) AS r0, round(d4, 0) AS r00 FROM w

-- case: round_decimal_negative_digits
SELECT id, round(d2, -1) AS r FROM w

-- case: round_double_column
SELECT id, round(x, 1) AS r1, round(x) AS r0 FROM w

-- case: round_double_halves
SELECT id, round(x) AS r FROM t

-- case: round_t_decimal
SELECT id, round(d, 1) AS r1, round(d) AS r0 FROM t

-- case: cast_decimal_narrow_scale_literal
SELECT CAST(0.125 AS DECIMAL(10,2)) AS a, CAST(-0.125 AS DECIMAL(10,2)) AS b, CAST(2.5 AS DECIMAL(10,0)) AS c, CAST(-0.05 AS DECIMAL(10,1)) AS d FROM one

-- case: cast_decimal_narrow_scale_column
SELECT id, CAST(d4 AS DECIMAL(10,2)) AS c2, CAST(d4 AS DECIMAL(10,3)) AS c3, CAST(d2 AS DECIMAL(10,1)) AS c1 FROM w

-- case: cast_decimal_to_int_rounds
SELECT id, CAST(d2 AS INTEGER) AS i FROM w

-- case: cast_decimal_literal_to_int
SELECT CAST(2.5 AS INTEGER) AS a, CAST(-2.5 AS INTEGER) AS b, CAST(0.5 AS INTEGER) AS c FROM one

-- case: cast_double_to_decimal
SELECT id, CAST(x AS DECIMAL(10,1)) AS c FROM w

-- case: cast_decimal_widen_scale
SELECT id, CAST(d2 AS DECIMAL(18,4)) AS c FROM w

-- case: sum_then_round
SELECT round(sum(d2), 1) AS r FROM w

-- case: round_avg_decimal
SELECT round(avg(d2), 2) AS r FROM w

-- case: round_in_group
SELECT g, round(sum(d), 1) AS r FROM t GROUP BY g

-- case: round_product
SELECT id, round(d2 * d4, 3) AS r FROM w

-- case: round_of_division
SELECT id, round(d2 / 3, 2) AS r FROM w

-- case: floor_ceil_decimal_scales
SELECT id, floor(d4) AS f, ceil(d4) AS c, floor(d2) AS f2 FROM w
