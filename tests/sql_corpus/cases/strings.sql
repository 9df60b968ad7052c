-- String functions, with NULLs, the empty string, padding and unicode (lengths count characters).

-- case: upper_lower
SELECT id, upper(s) AS up, lower(s) AS lo FROM t

-- case: upper_lower_unicode
SELECT id, upper(s) AS up, lower(s) AS lo FROM n

-- case: length_chars
SELECT id, length(s) AS len FROM t

-- case: length_unicode
SELECT id, length(s) AS len FROM n

-- case: char_length
SELECT id, char_length(s) AS len FROM n

-- case: octet_length
SELECT id, strlen(s) AS bytes FROM n

-- case: trim_both
SELECT id, trim(s) AS tr, ltrim(s) AS lt, rtrim(s) AS rt FROM t

-- case: trim_characters
SELECT id, trim(BOTH 'a' FROM s) AS tr FROM t

-- case: replace_basic
SELECT id, replace(s, 'p', 'P') AS r, replace(s, '', 'x') AS r2 FROM t

-- case: concat_function_nulls
SELECT id, concat(s, '-', g) AS c FROM t

-- case: concat_operator_nulls
SELECT id, s || '-' || g AS c FROM t

-- case: concat_with_numbers
SELECT id, s || v AS c, 'k=' || k AS kk FROM t

-- case: concat_ws
SELECT id, concat_ws('/', s, g, k) AS c FROM t

-- case: substring_from_for
SELECT id, substring(s FROM 2 FOR 3) AS sub FROM t

-- case: substring_from_only
SELECT id, substring(s FROM 3) AS sub FROM t

-- case: substr_two_args
SELECT id, substr(s, 2) AS sub FROM t

-- case: substr_negative_start
SELECT id, substr(s, -2) AS sub FROM t

-- case: substr_negative_start_len
SELECT id, substr(s, -3, 2) AS sub FROM t

-- case: substr_zero_start
SELECT id, substr(s, 0, 2) AS sub FROM t

-- case: substr_unicode
SELECT id, substr(s, 2, 3) AS sub FROM n

-- case: left_right
SELECT id, left(s, 2) AS l, right(s, 2) AS r FROM t

-- case: starts_with
SELECT id, starts_with(s, 'a') AS sw FROM t

-- case: ends_with_suffix
SELECT id, ends_with(s, 'e') AS ew FROM t

-- case: strpos_basic
SELECT id, strpos(s, 'p') AS pos FROM t

-- case: strpos_null
SELECT id, strpos(NULL, 'b') AS p1, strpos(s, NULL) AS p2 FROM t

-- case: position_in
SELECT id, position('a' IN s) AS pos FROM t

-- case: position_in_null
SELECT position('b' IN NULL) AS p FROM one

-- case: position_unicode
SELECT id, position('é' IN s) AS pos FROM n

-- case: reverse_string
SELECT id, reverse(s) AS r FROM n

-- case: repeat_string
SELECT id, repeat(s, 2) AS r FROM t WHERE length(s) < 6

-- case: lpad_rpad
SELECT id, lpad(s, 8, '*') AS lp, rpad(s, 8, '*') AS rp FROM t

-- case: lpad_truncates
SELECT id, lpad(s, 3, '*') AS lp FROM t

-- case: split_part
SELECT id, split_part(s, 'a', 2) AS sp FROM t

-- case: string_compare_order
SELECT id, s < 'b' AS lt, s >= 'B' AS ge FROM t

-- case: string_equality_case
SELECT id FROM t WHERE lower(s) = 'apple'

-- case: initcap_like
SELECT id, upper(substr(s, 1, 1)) || lower(substr(s, 2)) AS cap FROM t

-- case: regexp_matches_basic
SELECT id, regexp_matches(s, '^[a-c]') AS m FROM t

-- case: regexp_replace_basic
SELECT id, regexp_replace(s, '[aeiou]', '_', 'g') AS r FROM t

-- case: ascii_chr
SELECT id, ascii(s) AS a FROM t WHERE s <> ''

-- case: string_in_group_key
SELECT lower(s) AS ls, count(*) AS n FROM t GROUP BY lower(s)

-- case: empty_string_not_null
SELECT id, s = '' AS empty, s IS NULL AS isnull FROM t

-- case: string_literal_with_quote
SELECT 'it''s' AS a, length('it''s') AS b FROM one

-- case: string_with_braces
SELECT '{"a": 1}' AS j, '{partition}' AS p FROM one

-- case: unicode_literals
SELECT 'Ünïcödé' AS u, length('🙂') AS l, upper('straße') AS up FROM one

-- case: ltrim_rtrim_characters
SELECT id, ltrim(s, 'ap') AS l, rtrim(s, 'el') AS r FROM t

-- case: rpad_and_lpad_zero
SELECT id, rpad(s, 4, '.') AS r, lpad(s, 0, '.') AS z FROM t

-- case: concat_ws_nulls
SELECT id, concat_ws('-', s, g, CAST(k AS VARCHAR)) AS c FROM t
