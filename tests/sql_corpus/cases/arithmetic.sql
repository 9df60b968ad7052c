-- Arithmetic on every numeric type, with NULLs, negatives and mixed types.
-- DuckDB's rules: `/` is a DOUBLE division (also of integers), `//` an integer division that
-- truncates, `%` takes the dividend's sign; decimal results follow the SQL standard.

-- case: int_add_sub_mul
SELECT id, k + v AS a, k - v AS b, k * v AS c FROM t

-- case: int_neg_and_unary_minus
SELECT id, -v AS a, - -v AS b, -(k - v) AS c FROM t

-- case: int_div_is_double
SELECT id, v / 2 AS half, v / k AS q FROM t

-- case: int_div_negative_literal
SELECT -7 / 2 AS a, 7 / -2 AS b, -7 / -2 AS c FROM one

-- case: int_floor_div_negative
SELECT -7 // 2 AS a, 7 // -2 AS b, -7 // -2 AS c, 7 // 2 AS d FROM one

-- case: int_floor_div_column
SELECT id, v // 2 AS a, v // -3 AS b FROM t WHERE v IS NOT NULL

-- case: int_mod_negative_literal
SELECT -7 % 3 AS a, 7 % -3 AS b, -7 % -3 AS c, 7 % 3 AS d FROM one

-- case: int_mod_column
SELECT id, v % 3 AS a, v % -4 AS b FROM t

-- case: mod_function_negative
SELECT mod(-7, 3) AS a, mod(7, -3) AS b FROM one

-- case: decimal_mod
SELECT id, d % 1 AS frac, d % 0.3 AS m FROM t

-- case: double_mod
SELECT id, x % 2 AS m FROM t

-- case: group_by_mod_negative
SELECT v % 2 AS parity, count(*) AS n FROM t GROUP BY v % 2

-- case: group_by_mod_negative_alias
SELECT v % 3 AS r, sum(v) AS total FROM t GROUP BY r

-- case: int_div_by_zero_is_inf
SELECT id, v / 0 AS q FROM t

-- case: double_div_by_zero
SELECT id, x / 0 AS q FROM t

-- case: int_floor_div_by_zero
-- error
SELECT v // 0 AS q FROM t

-- case: int_mod_by_zero
-- error
SELECT v % 0 AS m FROM t

-- case: int_div_by_zero_column
-- error
SELECT v // (k - k) AS q FROM t WHERE k IS NOT NULL

-- case: decimal_div_by_zero
SELECT id, d / 0 AS q FROM t WHERE d IS NOT NULL AND d <> 0

-- case: int32_add_overflow
-- error
SELECT i + 1 AS j FROM h

-- case: int32_mul_overflow
-- error
SELECT i * 2 AS j FROM h WHERE i > 0

-- case: int32_sum_of_products_overflow
-- error
SELECT sum(v * 1000000000) AS total FROM t

-- case: int64_mul_overflow
-- error
SELECT big * 2 AS j FROM h

-- case: int32_sum_no_overflow
SELECT sum(i) AS total, sum(i) * 2 AS twice FROM h

-- case: int64_sum_beyond_int64
SELECT sum(big) AS total FROM h

-- case: int64_sum_fits
SELECT sum(big) AS total FROM h WHERE id > 2

-- case: bigint_cast_product
SELECT id, CAST(v AS BIGINT) * 1000000000 AS p FROM t

-- case: sum_bigint_product
SELECT sum(CAST(v AS BIGINT) * 1000000000) AS total FROM t

-- case: decimal_add_scales
SELECT id, d2 + d4 AS a, d0 + d2 AS b, d2 - d4 AS c FROM w

-- case: decimal_mul_exact
SELECT id, d2 * d4 AS a, d2 * d2 AS b, d0 * d2 AS c FROM w

-- case: decimal_mul_int
SELECT id, d * v AS a, d * 3 AS b FROM t

-- case: decimal_add_int
SELECT id, d + k AS a, d - 1 AS b FROM t

-- case: decimal_div
SELECT id, d2 / d4 AS a FROM w WHERE d4 <> 0

-- case: decimal_div_int
SELECT id, d / 3 AS a FROM t

-- case: decimal_times_double
SELECT id, d * x AS a, d + x AS b FROM t

-- case: int_plus_double
SELECT id, v + x AS a, k * x AS b FROM t

-- case: decimal_literal_arith
SELECT 0.1 + 0.2 AS a, 0.1 * 0.25 AS b, 1.5 - 2.25 AS c, 2.50 * 4 AS d FROM one

-- case: decimal_literal_div
SELECT 1.5 / 2.0 AS a, 10.00 / 4 AS b FROM one

-- case: float_literal_arith
SELECT 1e-3 * 4 AS a, 2.5e0 + 1 AS b FROM one

-- case: wide_decimal_add
SELECT id, d10 + d2 AS a, d10 * 2 AS b FROM w

-- case: operator_precedence
SELECT id, k + v * 2 AS a, (k + v) * 2 AS b, k - v - 1 AS c, v * 2 % 3 AS d FROM t

-- case: arith_in_where
SELECT id FROM t WHERE v * 2 > k + 3

-- case: arith_with_null_literal
SELECT id, v + NULL AS a, NULL * d AS b FROM t

-- case: abs_floor_ceil_decimal
SELECT id, abs(d) AS a, floor(d) AS f, ceil(d) AS c FROM t

-- case: abs_floor_ceil_double
SELECT id, abs(x) AS a, floor(x) AS f, ceil(x) AS c FROM t

-- case: abs_int
SELECT id, abs(v) AS a FROM t

-- case: sqrt_power
SELECT id, sqrt(abs(x)) AS r, power(x, 2) AS p2, power(2, v) AS p FROM t WHERE v BETWEEN -10 AND 10

-- case: ln_exp
SELECT id, ln(abs(x)) AS l, exp(x) AS e FROM t WHERE x <> 0

-- case: sign_values
SELECT id, sign(v) AS sv, sign(x) AS sx, sign(d) AS sd FROM t

-- case: greatest_least_int
SELECT id, greatest(k, v) AS g, least(k, v) AS l FROM t

-- case: greatest_least_mixed
SELECT id, greatest(v, x) AS g, least(d, 1) AS l FROM t

-- case: greatest_least_decimal_scales
SELECT id, greatest(d2, d4) AS g, least(d0, d2) AS l FROM w

-- case: ln_of_zero_and_negative
SELECT id, ln(x) AS l FROM t WHERE x <= 0

-- case: sqrt_negative_is_nan
SELECT id, sqrt(x) AS r FROM t WHERE x < 0

-- case: trunc_decimal
SELECT id, trunc(d) AS a FROM t

-- case: double_special
SELECT id, x * 1e308 * 10 AS big, -x * 1e308 * 10 AS nbig FROM t WHERE x IS NOT NULL AND x <> 0

-- case: bitwise_and_or_shifts
SELECT id, k & 3 AS a, k | 8 AS o, k << 2 AS l, v >> 1 AS r FROM t
