-- Casts between types: numbers, strings, booleans, decimals, dates; failing casts are errors.

-- case: cast_int_to_double
SELECT id, CAST(v AS DOUBLE) AS dv FROM t

-- case: cast_int_to_bigint
SELECT id, CAST(v AS BIGINT) AS bv FROM t

-- case: cast_int_to_decimal
SELECT id, CAST(v AS DECIMAL(10,2)) AS dv FROM t

-- case: cast_int_to_varchar
SELECT id, CAST(v AS VARCHAR) AS sv FROM t

-- case: cast_decimal_to_varchar
SELECT id, CAST(d AS VARCHAR) AS sv FROM t

-- case: cast_decimal_to_double
SELECT id, CAST(d AS DOUBLE) AS dv FROM t

-- case: cast_double_to_int_rounding
SELECT id, CAST(x AS INTEGER) AS iv FROM t

-- case: cast_double_to_bigint
SELECT id, CAST(x AS BIGINT) AS bv FROM w

-- case: cast_double_to_varchar
SELECT id, CAST(x AS VARCHAR) AS sv FROM w WHERE id IN (1, 3, 6)

-- case: cast_string_to_int
SELECT CAST('42' AS INTEGER) AS a, CAST(' -7 ' AS INTEGER) AS b FROM one

-- case: cast_string_to_int_fails
-- error
SELECT CAST(s AS INTEGER) AS i FROM t

-- case: cast_string_to_decimal
SELECT CAST('2.25' AS DECIMAL(10,1)) AS a, CAST('-0.125' AS DECIMAL(10,2)) AS b FROM one

-- case: cast_string_to_double
SELECT CAST('2.5e3' AS DOUBLE) AS a, CAST('-0.0' AS DOUBLE) AS b FROM one

-- case: cast_bool_to_int
SELECT id, CAST(b AS INTEGER) AS bi FROM t

-- case: cast_int_to_bool
SELECT id, CAST(v AS BOOLEAN) AS vb FROM t

-- case: cast_string_to_bool
SELECT CAST('true' AS BOOLEAN) AS a, CAST('false' AS BOOLEAN) AS b FROM one

-- case: cast_bool_to_varchar
SELECT id, CAST(b AS VARCHAR) AS sb FROM t

-- case: cast_decimal_overflow
-- error
SELECT CAST(d AS DECIMAL(4,2)) AS c FROM t

-- case: cast_bigint_to_int_overflow
-- error
SELECT CAST(big AS INTEGER) AS c FROM h

-- case: cast_double_to_decimal_halves
SELECT id, CAST(x AS DECIMAL(10,0)) AS c FROM t

-- case: try_cast_string
SELECT id, TRY_CAST(s AS INTEGER) AS i FROM t

-- case: cast_shorthand_colons
SELECT id, v::DOUBLE AS dv, d::VARCHAR AS sd FROM t

-- case: cast_decimal_precision_change
SELECT id, CAST(d2 AS DECIMAL(38,2)) AS c FROM w

-- case: cast_timestamp_to_varchar
SELECT id, CAST(ts AS VARCHAR) AS sv FROM t

-- case: cast_null_typed
SELECT id, CAST(NULL AS INTEGER) AS ni, CAST(NULL AS VARCHAR) AS ns FROM t

-- case: implicit_int_to_double_in_union
SELECT v AS a FROM t UNION ALL SELECT x AS a FROM t

-- case: literal_types
SELECT 1 AS i, 2147483648 AS bi, 1.5 AS dec, 1e0 AS dbl, 'x' AS str, true AS bo, DATE '2024-01-01' AS dt FROM one

-- case: cast_float_type
SELECT id, CAST(x AS FLOAT) AS f FROM w WHERE id IN (1, 3, 6)
