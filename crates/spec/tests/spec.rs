//! Job spec errors say where: the file, the step, the input or output, the field.

use runner_spec::{JobSpec, SpecError};

const GOOD: &str = r#"
name = "events"
[[step]]
name = "clean"
[step.inputs.raw]
path = "raw/{partition_key}/*.csv"
format = "csv"
header = false
columns = [["id", "i64"], ["ts", "datetime"]]
[step.outputs.clean]
path = "clean"
partition_by = ["day"]
sql = "SELECT id, ts, CAST(ts AS DATE) AS day FROM raw"

[[step]]
name = "daily"
split = "single"
[step.inputs.clean]
path = "clean/**/*.parquet"
format = "parquet"
hive = true
[step.outputs.daily]
path = "daily"
sql = "SELECT day, COUNT(*) AS n FROM clean GROUP BY day"

[[check]]
kind = "row_count"
name = "has_rows"
output = "daily.daily"
min = 1
"#;

fn err(text: &str) -> String {
    match JobSpec::parse(text, "job.toml") {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_good_spec_parses_and_orders_steps() {
    let spec = JobSpec::parse(GOOD, "job.toml").unwrap();
    let order: Vec<_> = runner_spec::validate::order(&spec).unwrap().iter().map(|s| s.name.clone()).collect();
    assert_eq!(order, ["clean", "daily"]);
    let reversed = GOOD.replacen("[[step]]\nname = \"clean\"", "[[step]]\nname = \"clean0\"", 1);
    assert!(JobSpec::parse(&reversed, "x").is_ok());
}

#[test]
fn the_plain_runner_refuses_a_function_it_lacks_before_reading_data() {
    let e = err(&GOOD.replace("SELECT id, ts,", "SELECT id, ua_family(id) AS f, ts,"));
    assert!(e.contains("step \"clean\"") || e.contains("clean"), "{e}");
    assert!(e.contains("no function \"ua_family\": SQL has none of that name"), "{e}");
    assert!(e.contains("this binary brings no functions of its own"), "{e}");
}

#[test]
fn unknown_field_names_the_field_and_line() {
    let e = err(&GOOD.replace("header = false", "header = false\nseperator = \";\""));
    assert!(e.contains("job.toml") && e.contains("seperator"), "{e}");
    assert!(e.contains("line"), "the parser gives the line: {e}");
}

#[test]
fn bad_dtype_names_step_input_and_column() {
    let e = err(&GOOD.replace(r#"["ts", "datetime"]"#, r#"["ts", "timestampz"]"#));
    assert!(e.contains(r#"step "clean" › input "raw" › columns[1]"#), "{e}");
    assert!(e.contains("timestampz") && e.contains("datetime"), "lists what is accepted: {e}");
}

#[test]
fn time_formats_are_checked() {
    let with = |column: &str| GOOD.replace(r#"["ts", "datetime"]"#, column);
    let e = err(&with(r#"{ name = "ts", dtype = "i64", format = "%Y" }"#));
    assert!(e.contains("columns[1]") && e.contains("date and datetime"), "{e}");
    let e = err(&with(r#"{ name = "ts", dtype = "datetime", format = "%Y-%m-%d %Q" }"#));
    assert!(e.contains("not a valid strftime"), "{e}");
    let e = err(&with(r#"{ name = "ts", dtype = "datetime", format = "%Y-%m-%d" }"#));
    assert!(e.contains("needs an hour"), "{e}");
    let e = err(&with(r#"{ name = "ts", dtype = "datetime", format = "%H:%M %d" }"#));
    assert!(e.contains("year, month and day"), "{e}");
    let e = err(&with(r#"{ name = "ts", dtype = "datetime", format = "%F %T%z" }"#));
    assert!(e.contains("time-zone offset"), "{e}");
    JobSpec::parse(&with(r#"{ name = "ts", dtype = "datetime", format = "%F %T" }"#), "job.toml").unwrap();
}

#[test]
fn sql_reading_an_unknown_table_is_refused() {
    let e = err(&GOOD.replace("FROM clean GROUP BY day", "FROM cleaned GROUP BY day"));
    assert!(e.contains(r#"step "daily" › output "daily" › sql"#), "{e}");
    assert!(e.contains("cleaned") && e.contains("\"clean\""), "{e}");
}

#[test]
fn missing_input_and_headerless_without_columns() {
    let no_inputs =
        GOOD.replace("[step.inputs.clean]\npath = \"clean/**/*.parquet\"\nformat = \"parquet\"\nhive = true\n", "");
    let e = err(&no_inputs);
    assert!(e.contains("inputs"), "{e}");
    let e = err(&GOOD.replace("columns = [[\"id\", \"i64\"], [\"ts\", \"datetime\"]]\n", ""));
    assert!(e.contains(r#"input "raw" › columns"#) && e.contains("header"), "{e}");
    let e = err(&GOOD.replace("hive = true\n", "hive = true\nrequired = false\n"));
    assert!(e.contains(r#"input "clean" › required"#) && e.contains("declare `columns`"), "{e}");
    let e = err(&GOOD.replace("split = \"single\"", "split = \"single\"\nsplit_input = \"nope\""));
    assert!(e.contains("split_input") && e.contains("nope"), "{e}");
}

#[test]
fn unknown_placeholder_and_cycles_and_checks() {
    let e = err(&GOOD.replace("{partition_key}", "{partition}"));
    assert!(e.contains("unknown placeholder {partition}"), "{e}");
    let cyc = GOOD.replace("path = \"raw/{partition_key}/*.csv\"", "path = \"daily/*.parquet\"");
    assert!(err(&cyc).contains("cycle"));
    let e = err(&GOOD.replace("output = \"daily.daily\"", "output = \"daily.nope\""));
    assert!(e.contains("check[0]") && e.contains("daily.nope"), "{e}");
    let e = err(&GOOD.replace("min = 1", "min = 1\nseverity = \"FATAL\""));
    assert!(e.contains("WARN or ERROR"), "{e}");
}

#[test]
fn unreadable_file_is_an_error_naming_it() {
    match JobSpec::load(std::path::Path::new("/nonexistent/job.toml")) {
        Err(SpecError::Read { path, .. }) => assert!(path.contains("/nonexistent/job.toml")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_description_is_the_asset_graph_and_code_versions_follow_their_step() {
    let describe = |text: &str| runner_spec::describe::describe(&JobSpec::parse(text, "job.toml").unwrap()).unwrap();
    let d = describe(GOOD);
    let deps: Vec<(String, Vec<String>)> =
        d.assets.iter().map(|a| (a.key.to_string(), a.deps.iter().map(|k| k.to_string()).collect())).collect();
    assert_eq!(
        deps,
        [("clean".to_string(), vec!["events/raw".to_string()]), ("daily".to_string(), vec!["clean".to_string()])],
        "an input no step writes is a source asset; another step's output is its asset"
    );
    assert_eq!(d.steps[1].upstream, ["clean"]);
    assert_eq!(d.checks[0].name, "has_rows");
    assert_eq!(d.checks[0].asset.to_string(), "daily");
    // A step's code version changes when the step does, and only that step's.
    let changed = describe(&GOOD.replace("COUNT(*) AS n", "COUNT(*) AS events"));
    assert_eq!(changed.steps[0].code_version, d.steps[0].code_version);
    assert_ne!(changed.steps[1].code_version, d.steps[1].code_version);
    // Names for people, and the upstream asset of an input, change no version.
    let annotated = describe(
        &GOOD
            .replace("path = \"daily\"\n", "path = \"daily\"\ndescription = \"rows per day\"\n")
            .replace("format = \"csv\"\n", "format = \"csv\"\nasset = \"landing/raw\"\n"),
    );
    assert_eq!(annotated.assets[1].description.as_deref(), Some("rows per day"));
    assert_eq!(annotated.assets[0].deps[0].to_string(), "landing/raw");
    assert_eq!(
        annotated.steps.iter().map(|s| &s.code_version).collect::<Vec<_>>(),
        d.steps.iter().map(|s| &s.code_version).collect::<Vec<_>>()
    );
    // A new output is a new asset.
    let more = describe(&GOOD.replace(
        "[[check]]",
        "[step.outputs.weekly]\npath = \"weekly\"\nsql = \"SELECT 1 AS x FROM clean\"\n\n[[check]]",
    ));
    assert!(more.assets.iter().any(|a| &*a.key == "weekly" && a.step == "daily"), "{:?}", more.assets);
}

#[test]
fn zero_file_and_item_bounds_are_refused_naming_the_field() {
    let with_partition =
        GOOD.replace("split = \"single\"", "split = { partition = \"day\", size_mb = 0 }\nsplit_input = \"clean\"");
    let e = err(&with_partition);
    assert!(e.contains(r#"step "daily" › split"#) && e.contains("size_mb must be positive"), "{e}");
    let e = err(&GOOD.replace("partition_by = [\"day\"]", "partition_by = [\"day\"]\nmax_rows_per_file = 0"));
    assert!(e.contains(r#"output "clean" › max_rows_per_file"#) && e.contains("must be positive"), "{e}");
}

#[test]
fn the_file_and_item_bounds_change_a_steps_definition_only_when_set() {
    let definition = |text: &str| {
        let spec = JobSpec::parse(text, "job.toml").unwrap();
        spec.steps.iter().map(|s| serde_json::to_string(s).unwrap()).collect::<Vec<_>>()
    };
    // Unset, they are left out, so steps written before them keep their item ids.
    let before = definition(GOOD);
    assert!(before.iter().all(|d| !d.contains("max_rows_per_file") && !d.contains("size_mb")), "{before:?}");
    let bounded = GOOD
        .replace("partition_by = [\"day\"]", "partition_by = [\"day\"]\nmax_rows_per_file = 1000")
        .replace("split = \"single\"", "split = { partition = \"day\", size_mb = 64 }");
    let after = definition(&bounded);
    assert!(after[0].contains("\"max_rows_per_file\":1000"), "{}", after[0]);
    assert!(after[1].contains("\"size_mb\":64"), "{}", after[1]);
}

#[test]
fn a_misspelt_split_is_refused_naming_the_key() {
    let e = err(&GOOD.replace("split = \"single\"", "split = { partition = \"day\", sizemb = 64 }"));
    assert!(e.contains("job.toml") && e.contains("\"sizemb\"") && e.contains("size_mb"), "{e}");
    let e = err(&GOOD.replace("split = \"single\"", "split = \"files\""));
    assert!(e.contains("\"files\"") && e.contains("\"single\""), "{e}");
    let e = err(&GOOD.replace("split = \"single\"", "split = { size_mb = \"big\" }"));
    assert!(e.contains("size_mb must be a whole number"), "{e}");
    let e = err(&GOOD.replace("split = \"single\"", "split = { partition = 3 }"));
    assert!(e.contains("partition must be a hive key"), "{e}");
    let spec = JobSpec::parse(&GOOD.replace("split = \"single\"", "split = { size_mb = 64 }"), "job.toml").unwrap();
    assert_eq!(spec.steps[1].split, runner_spec::Split::Size { size_mb: 64 });
}

#[test]
fn sql_refused_on_its_text_is_refused_at_validation_naming_it_and_where() {
    let full_using = GOOD.replace(
        r#"sql = "SELECT day, COUNT(*) AS n FROM clean GROUP BY day""#,
        r#"sql = "SELECT a.day FROM clean a FULL JOIN clean b USING (day)""#,
    );
    let e = err(&full_using);
    assert!(e.starts_with("job.toml: step \"daily\" › output \"daily\" › sql: line 1, column 37: `clean"), "{e}");
    assert!(e.ends_with("write FULL JOIN … ON and COALESCE the keys"), "{e}");
    // INTERSECT ALL runs (it keeps the counts of duplicates): it passes validation.
    let intersect_all = GOOD.replace(
        r#"sql = "SELECT day, COUNT(*) AS n FROM clean GROUP BY day""#,
        r#"sql = "SELECT day, COUNT(*) AS n FROM clean GROUP BY day INTERSECT ALL SELECT day, 1 AS n FROM clean""#,
    );
    JobSpec::parse(&intersect_all, "job.toml").unwrap();
    let fraction = GOOD.replace(
        r#"sql = "SELECT day, COUNT(*) AS n FROM clean GROUP BY day""#,
        r#"sql = "SELECT day + INTERVAL '1.5' DAY AS d FROM clean""#,
    );
    assert!(
        err(&fraction).contains("line 1, column 23: `INTERVAL '1.5' DAY`: an interval with a fraction"),
        "{}",
        err(&fraction)
    );
    // What the planner decorrelates or checks as it runs passes validation.
    let planned = GOOD.replace(
        r#"sql = "SELECT day, COUNT(*) AS n FROM clean GROUP BY day""#,
        r#"sql = "SELECT day, COUNT(*) AS n FROM clean c WHERE day > (SELECT min(day) FROM clean WHERE day < c.day) OR day IS NULL GROUP BY day""#,
    );
    JobSpec::parse(&planned, "job.toml").unwrap();
}

#[test]
fn softer_row_count_bounds_are_refused_where_they_could_never_fail() {
    let bounded = |extra: &str| GOOD.replace("min = 1", &format!("min = 1\n{extra}"));
    assert!(JobSpec::parse(&bounded("max = 100\nwarn_min = 10\nwarn_max = 50"), "job.toml").is_ok());
    let e = err(&bounded("warn_min = 0"));
    assert!(e.contains("check[0]") && e.contains("warn_min 0 is outside min 1"), "{e}");
    let e = err(&bounded("max = 100\nwarn_max = 101"));
    assert!(e.contains("warn_max 101 is outside max 100"), "{e}");
    let e = err(&bounded("warn_min = 60\nwarn_max = 50"));
    assert!(e.contains("warn_min 60 is above warn_max 50"), "{e}");
    let e = err(&bounded("warn_min = 10\nseverity = \"WARN\""));
    assert!(e.contains("softer bounds of an ERROR check"), "{e}");
    let d = runner_spec::describe::describe(&JobSpec::parse(&bounded("warn_min = 10"), "job.toml").unwrap()).unwrap();
    assert_eq!(d.checks[0].description, "at least 1 rows; warns unless at least 10 rows");
}

#[test]
fn the_declared_environment_is_part_of_every_steps_version_and_names_are_checked() {
    let describe = |text: &str| runner_spec::describe::describe(&JobSpec::parse(text, "job.toml").unwrap()).unwrap();
    let versions = |text: &str| describe(text).steps.into_iter().map(|s| s.code_version).collect::<Vec<_>>();
    let plain = versions(GOOD);
    let with_env =
        |table: &str| GOOD.replace("[[step]]\nname = \"clean\"", &format!("{table}\n[[step]]\nname = \"clean\""));
    let declared = versions(&with_env("[env]\nKEY_VERSION = \"1\"\nKEY = { secret = \"prod/key\" }\n"));
    let bumped = versions(&with_env("[env]\nKEY_VERSION = \"2\"\nKEY = { secret = \"prod/key\" }\n"));
    let moved = versions(&with_env("[env]\nKEY_VERSION = \"1\"\nKEY = { parameter = \"/prod/key\" }\n"));
    for (a, b) in [(&plain, &declared), (&declared, &bumped), (&declared, &moved)] {
        assert!(a.iter().zip(b.iter()).all(|(x, y)| x != y), "{a:?} {b:?}");
    }
    // An empty table is no table: existing jobs keep their versions.
    assert_eq!(versions(&with_env("[env]\n")), plain);
    let refused = err(&with_env("[env]\nAWS_PROFILE = \"prod\"\n"));
    assert!(refused.contains("env \"AWS_PROFILE\"") && refused.contains("reserved"), "{refused}");
    let hot = err(&with_env("[env]\nPOLARS_HOT_TABLE_SIZE = \"5000\"\n"));
    assert!(hot.contains("env \"POLARS_HOT_TABLE_SIZE\"") && hot.contains("power of two"), "{hot}");
    let misspelt = err(&with_env("[env]\nKEY = { secrett = \"prod/key\" }\n"));
    assert!(misspelt.contains("or { parameter = \"name\" }"), "{misspelt}");
}
