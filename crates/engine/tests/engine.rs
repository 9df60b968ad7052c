//! The engine on small hand-made files: every input format and option, the bad-row policies,
//! hive output, templated SQL, and the errors that name file, row and column.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use runner_engine::{EngineError, ItemRun, LocalFile, run_item};
use runner_spec::JobSpec;
use runner_types::Partition;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p
}

fn write_gz(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    let mut e = flate2::write::GzEncoder::new(std::fs::File::create(&p).unwrap(), flate2::Compression::fast());
    e.write_all(text.as_bytes()).unwrap();
    e.finish().unwrap();
    p
}

fn local(path: &Path) -> LocalFile {
    LocalFile {
        path: path.to_path_buf(),
        source: path.display().to_string(),
        size: std::fs::metadata(path).unwrap().len(),
    }
}

fn spec(toml: &str) -> JobSpec {
    JobSpec::parse(toml, "test.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn run(
    job: &JobSpec,
    inputs: &[(&str, Vec<PathBuf>)],
    out: &Path,
    partition: Option<&Partition>,
) -> Result<runner_engine::ItemStats, EngineError> {
    let inputs: BTreeMap<String, Vec<LocalFile>> =
        inputs.iter().map(|(n, fs)| (n.to_string(), fs.iter().map(|f| local(f)).collect())).collect();
    run_item(ItemRun { step: &job.steps[0], partition, inputs, out_dir: out, file_tag: "item0", checks: &job.checks })
}

fn read_dir_parquet(dir: &Path) -> DataFrame {
    LazyFrame::scan_parquet(
        PlRefPath::new(dir.to_string_lossy().as_ref()),
        ScanArgsParquet { hive_options: HiveOptions::new_enabled(), ..Default::default() },
    )
    .unwrap()
    .collect()
    .unwrap()
}

const CSV_JOB: &str = r#"
name = "t"
[[step]]
name = "clean"
[step.inputs.raw]
path = "raw/*.csv.gz"
format = "csv"
header = false
compression = "gzip"
columns = [["id", "i64"], ["user_id", "str"], { name = "ts", dtype = "datetime", required = true }, ["amount", "f64"], ["ok", "bool"]]
bad_rows = "POLICY"
[step.outputs.clean]
path = "clean"
partition_by = ["day"]
row_group_size = 1000
compression = "zstd"
compression_level = 3
sql = "SELECT id, user_id, ts, amount, ok, CAST(ts AS DATE) AS day FROM raw"
"#;

const CSV_DATA: &str = "1,u1,2024-01-01 10:00:00,1.5,true
2,u2,2024-01-01 11:00:00,2.5,false
3,u3,2024-01-02 09:00:00,notanumber,true
4,u4,2024-01-02 10:00:00,4.5,true,extra
5,u5,,5.5,false
6,u6,2024-01-02 12:00:00,6.5,1
";

#[test]
fn csv_fail_names_file_row_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_gz(dir.path(), "a.csv.gz", CSV_DATA);
    let job = spec(&CSV_JOB.replace("POLICY", "fail"));
    let err = run(&job, &[("raw", vec![f.clone()])], &dir.path().join("out"), None).unwrap_err();
    match err {
        EngineError::BadRow { row, column, file, detail, .. } => {
            assert_eq!(row, 3);
            assert_eq!(column, "amount");
            assert!(file.ends_with("a.csv.gz"));
            assert!(detail.contains("notanumber"), "{detail}");
        }
        other => panic!("expected a bad-row error, got {other}"),
    }
}

#[test]
fn csv_skip_counts_and_drops() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_gz(dir.path(), "a.csv.gz", CSV_DATA);
    let job = spec(&CSV_JOB.replace("POLICY", "skip"));
    let out = dir.path().join("out");
    let stats = run(&job, &[("raw", vec![f])], &out, None).unwrap();
    assert_eq!(stats.rows_dropped["raw"], 3, "{stats:?}");
    assert_eq!(stats.rows_in["raw"], 6);
    let o = &stats.outputs["clean"];
    assert_eq!(o.rows, 3);
    assert_eq!(o.rows_by_hive_key.get("day=2024-01-01"), Some(&2));
    assert_eq!(o.rows_by_hive_key.get("day=2024-01-02"), Some(&1));
    assert!(o.schema.iter().any(|(n, t)| n == "amount" && t == "f64"), "{:?}", o.schema);
    let df = read_dir_parquet(&out.join("clean"));
    assert_eq!(df.height(), 3);
    let mut ids: Vec<i64> = df.column("id").unwrap().i64().unwrap().into_no_null_iter().collect();
    ids.sort();
    assert_eq!(ids, [1, 2, 6]);
    assert!(!out.join("_quarantine").exists(), "skip writes nothing aside");
}

#[test]
fn csv_quarantine_writes_bad_rows_aside_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_gz(dir.path(), "a.csv.gz", CSV_DATA);
    let job = spec(&CSV_JOB.replace("POLICY", "quarantine"));
    let out = dir.path().join("out");
    let stats = run(&job, &[("raw", vec![f])], &out, None).unwrap();
    assert_eq!(stats.rows_quarantined["raw"], 3);
    let q = LazyFrame::scan_parquet(
        PlRefPath::new(out.join("_quarantine/raw/item0.parquet").to_string_lossy().as_ref()),
        Default::default(),
    )
    .unwrap()
    .sort(["row"], Default::default())
    .collect()
    .unwrap();
    let rows: Vec<u64> = q.column("row").unwrap().u64().unwrap().into_no_null_iter().collect();
    assert_eq!(rows, [3, 4, 5]);
    let reasons: Vec<String> = q.column("reason").unwrap().str().unwrap().iter().flatten().map(String::from).collect();
    assert!(reasons[0].contains("notanumber"));
    assert!(reasons[1].contains("more fields"));
    assert!(reasons[2].contains("required"));
    assert_eq!(q.column("amount").unwrap().str().unwrap().get(0), Some("notanumber"), "raw text is kept");
}

#[test]
fn csv_with_header_separator_quote_and_nulls() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "h.csv", "id;name;score\n1;'a;b';NA\n2;'c';3.5\n");
    let job = spec(
        r#"
name = "t"
[[step]]
name = "s"
[step.inputs.h]
path = "h.csv"
format = "csv"
separator = ";"
quote = "'"
null_values = ["NA"]
columns = [["id", "u32"], ["name", "str"], ["score", "f64"]]
[step.outputs.o]
path = "o"
"#,
    );
    let out = dir.path().join("out");
    let stats = run(&job, &[("h", vec![f])], &out, None).unwrap();
    assert_eq!(stats.outputs["o"].rows, 2);
    let df = read_dir_parquet(&out.join("o"));
    assert_eq!(df.column("name").unwrap().str().unwrap().get(0), Some("a;b"));
    assert_eq!(df.column("score").unwrap().null_count(), 1);
    assert_eq!(df.column("id").unwrap().dtype(), &DataType::UInt32);
}

#[test]
fn csv_files_whose_headers_differ_in_order_and_extras_read_by_name() {
    // Five files, three header forms: read by name, each file's rows land in the right columns,
    // and files sharing a header are scanned together (one scan per header form).
    let dir = tempfile::tempdir().unwrap();
    let files = vec![
        write(dir.path(), "a.csv", "id,n\na,1\nb,2\n"),
        write(dir.path(), "b.csv", "n,extra,id\n30,x,c\n"),
        write(dir.path(), "c.csv", "id,n\nd,4\n"),
        write(dir.path(), "d.csv", "n,id\n50,e\n"),
        write(dir.path(), "e.csv", "n,extra,id\n60,y,f\n"),
    ];
    let job = spec(
        r#"
name = "t"
[[step]]
name = "s"
[step.inputs.p]
path = "*.csv"
format = "csv"
columns = [["id", "str"], ["n", "i64"]]
[step.outputs.o]
path = "o"
sql = "SELECT id, n FROM p"
"#,
    );
    let out = dir.path().join("out");
    let stats = run(&job, &[("p", files)], &out, None).unwrap();
    assert_eq!(stats.outputs["o"].rows, 6);
    let df = read_dir_parquet(&out.join("o")).sort(["id"], Default::default()).unwrap();
    let ids: Vec<Option<&str>> = df.column("id").unwrap().str().unwrap().iter().collect();
    let ns: Vec<Option<i64>> = df.column("n").unwrap().i64().unwrap().iter().collect();
    assert_eq!(ids, ["a", "b", "c", "d", "e", "f"].map(Some));
    assert_eq!(ns, [1, 2, 30, 4, 50, 60].map(Some));
}

#[test]
fn ndjson_flatten_parse_json_and_policies() {
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        r#"{"id": 1, "device": {"os": "ios", "hw": {"model": "x"}}, "tags": ["a", "b"], "payload": "{\"k\": 7}"}"#,
        r#"{"id": 2, "device": {"os": "android", "hw": {"model": "y"}}, "tags": [], "payload": "{\"k\": 8}"}"#,
        r#"{"id": "three", "device": null, "tags": null, "payload": null}"#,
        r#"not json at all"#,
    ];
    let f = write(dir.path(), "e.ndjson", &(lines.join("\n") + "\n"));
    let toml = |policy: &str| {
        format!(
            r#"
name = "t"
[[step]]
name = "s"
[step.inputs.e]
path = "e.ndjson"
format = "ndjson"
bad_rows = "{policy}"
columns = [{{ name = "id", dtype = "i64", required = true }}, ["payload", "str"]]
[step.outputs.o]
path = "o"
"#
        )
    };
    // With declared columns the kinds are checked: line 3 has a string id, line 4 is not JSON.
    let out = dir.path().join("q");
    let stats = run(&spec(&toml("quarantine")), &[("e", vec![f.clone()])], &out, None).unwrap();
    assert_eq!(stats.rows_quarantined["e"], 2);
    assert_eq!(stats.rows_in["e"], 4);
    let err = run(&spec(&toml("fail")), &[("e", vec![f.clone()])], &dir.path().join("f"), None).unwrap_err();
    assert!(matches!(err, EngineError::BadRow { row: 3, ref column, .. } if column == "id"), "{err}");

    // Without declared columns, nested records flatten like Glue's Relationalize.
    let good = write(dir.path(), "g.ndjson", &(lines[..2].join("\n") + "\n"));
    let job = spec(
        r#"
name = "t"
[[step]]
name = "s"
[step.inputs.e]
path = "g.ndjson"
format = "ndjson"
ops = [{ op = "flatten", explode = ["tags"] }, { op = "parse_json", column = "payload", fields = [["k", "i64"]] }]
[step.outputs.o]
path = "o"
sql = "SELECT id, device_os, device_hw_model, tags, payload_k FROM e ORDER BY id"
"#,
    );
    let out = dir.path().join("flat");
    let stats = run(&job, &[("e", vec![good])], &out, None).unwrap();
    assert_eq!(stats.outputs["o"].rows, 3, "two tags explode into two rows, an empty list into one");
    let df = read_dir_parquet(&out.join("o"));
    assert_eq!(df.column("device_hw_model").unwrap().str().unwrap().get(0), Some("x"));
    assert_eq!(df.column("payload_k").unwrap().i64().unwrap().get(2), Some(8));
}

fn write_parquet(path: &Path, mut df: DataFrame) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    ParquetWriter::new(std::fs::File::create(path).unwrap()).finish(&mut df).unwrap();
}

#[test]
fn parquet_hive_input_templated_sql_and_schema_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("in/day=2024-01-01/a.parquet");
    let b = dir.path().join("in/day=2024-01-02/b.parquet");
    write_parquet(&a, df!("user_id" => ["u1", "u2"], "n" => [1i64, 2]).unwrap());
    write_parquet(&b, df!("user_id" => ["u1", "u3"], "n" => [10i64, 20]).unwrap());
    let job = spec(
        r#"
name = "t"
[[step]]
name = "s"
split = "single"
[step.inputs.p]
path = "in/**/*.parquet"
format = "parquet"
hive = true
[step.outputs.o]
path = "o"
sql = "SELECT user_id, SUM(n) AS n FROM p WHERE CAST(day AS VARCHAR) = '{partition_key}' GROUP BY user_id ORDER BY user_id"
"#,
    );
    let out = dir.path().join("out");
    let p = Partition::from_key("2024-01-02").unwrap();
    let stats = run(&job, &[("p", vec![a.clone(), b.clone()])], &out, Some(&p)).unwrap();
    assert_eq!(stats.rows_in["p"], 4, "parquet row counts come from metadata");
    let df = read_dir_parquet(&out.join("o"));
    assert_eq!(df.column("n").unwrap().i64().unwrap().into_no_null_iter().collect::<Vec<_>>(), [10, 20]);

    let c = dir.path().join("in/day=2024-01-03/c.parquet");
    write_parquet(&c, df!("user_id" => ["u9"], "n" => ["not an int"]).unwrap());
    let err = run(&job, &[("p", vec![a, c])], &dir.path().join("out2"), Some(&p)).unwrap_err();
    match err {
        EngineError::SchemaMismatch { file, found, .. } => {
            assert!(file.ends_with("c.parquet"));
            assert!(found.contains('n'), "{found}");
        }
        other => panic!("expected a schema mismatch, got {other}"),
    }
}

#[test]
fn partition_by_a_missing_column_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "x.csv", "a\n1\n");
    let job = spec(
        r#"
name = "t"
[[step]]
name = "s"
[step.inputs.x]
path = "x.csv"
format = "csv"
[step.outputs.o]
path = "o"
partition_by = ["nope"]
"#,
    );
    let err = run(&job, &[("x", vec![f])], &dir.path().join("out"), None).unwrap_err().to_string();
    assert!(err.contains("nope") && err.contains("partition_by"), "{err}");
}

const DATES_JOB: &str = r#"
name = "t"
[[step]]
name = "s"
[step.inputs.d]
path = "d.csv"
format = "csv"
header = false
columns = [["id", "i64"], TS, DAY]
bad_rows = "POLICY"
[step.outputs.o]
path = "o"
sql = "SELECT id, ts, day FROM d ORDER BY id"
"#;

fn dates_job(ts: &str, day: &str, policy: &str) -> JobSpec {
    spec(&DATES_JOB.replace("TS", ts).replace("DAY", day).replace("POLICY", policy))
}

fn micros(df: &DataFrame, column: &str) -> Vec<Option<i64>> {
    df.column(column).unwrap().cast(&DataType::Int64).unwrap().i64().unwrap().iter().collect()
}

#[test]
fn dates_in_a_declared_format_parse_and_a_misfit_row_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "d.csv", "1,31/12/2023 23:59,05.01.2024\n2,01/02/2024 00:30,\n");
    let job = dates_job(
        r#"{ name = "ts", dtype = "datetime", format = "%d/%m/%Y %H:%M" }"#,
        r#"{ name = "day", dtype = "date", format = "%d.%m.%Y" }"#,
        "fail",
    );
    let out = dir.path().join("out");
    run(&job, &[("d", vec![f])], &out, None).unwrap();
    let df = read_dir_parquet(&out.join("o"));
    // 2023-12-31T23:59 and 2024-02-01T00:30 in microseconds since the epoch.
    assert_eq!(micros(&df, "ts"), [Some(1_704_067_140_000_000), Some(1_706_747_400_000_000)]);
    assert_eq!(micros(&df, "day"), [Some(19_727), None]);

    // Day and month swapped: the 13th month does not exist, and the error says where.
    let bad = write(dir.path(), "d.csv", "1,31/12/2023 23:59,05.01.2024\n2,12/13/2024 00:30,\n");
    let err = run(&job, &[("d", vec![bad])], &dir.path().join("out2"), None).unwrap_err();
    match err {
        EngineError::BadRow { row, column, detail, .. } => {
            assert_eq!((row, column.as_str()), (2, "ts"), "{detail}");
            assert!(detail.contains("12/13/2024"), "{detail}");
        }
        other => panic!("expected a bad-row error, got {other}"),
    }
}

#[test]
fn sniffed_formats_cover_iso_variants_and_agree_with_the_bad_row_policies() {
    let dir = tempfile::tempdir().unwrap();
    // ISO with a `T`, fractions on some rows only, a `Z`-less timestamp, and compact dates.
    let text = "1,2024-03-01T08:00:00,20240301\n2,2024-03-01T08:00:00.250,20240302\n3,,20240303\n";
    let f = write_gz(dir.path(), "d.csv.gz", text);
    let job = dates_job(r#"["ts", "datetime"]"#, r#"["day", "date"]"#, "fail");
    let out = dir.path().join("out");
    run(&job, &[("d", vec![f])], &out, None).unwrap();
    let df = read_dir_parquet(&out.join("o"));
    let base = 1_709_280_000_000_000;
    assert_eq!(micros(&df, "ts"), [Some(base), Some(base + 250_000), None]);
    assert_eq!(micros(&df, "day"), [Some(19_783), Some(19_784), Some(19_785)]);

    // zstd-compressed input, sniffed the same way.
    let zst = dir.path().join("d.csv.zst");
    std::fs::write(&zst, zstd::encode_all(text.as_bytes(), 3).unwrap()).unwrap();
    let out = dir.path().join("out-zstd");
    run(&job, &[("d", vec![zst])], &out, None).unwrap();
    let df = read_dir_parquet(&out.join("o"));
    assert_eq!(micros(&df, "ts"), [Some(base), Some(base + 250_000), None]);

    // A row past the sample that the sniffed format does not fit: `skip` drops exactly it.
    let mut text = String::new();
    for i in 0..3_000 {
        text.push_str(&format!("{i},2024-03-01 08:00:{:02},2024-03-01\n", i % 60));
    }
    text.push_str("3000,01.03.2024 08:00:00,2024-03-01\n");
    let f = write(dir.path(), "d.csv", &text);
    let job = dates_job(r#"["ts", "datetime"]"#, r#"["day", "date"]"#, "skip");
    let stats = run(&job, &[("d", vec![f.clone()])], &dir.path().join("out2"), None).unwrap();
    assert_eq!((stats.rows_in["d"], stats.rows_dropped["d"]), (3_001, 1), "{stats:?}");
    let job = dates_job(r#"["ts", "datetime"]"#, r#"["day", "date"]"#, "fail");
    match run(&job, &[("d", vec![f])], &dir.path().join("out3"), None).unwrap_err() {
        EngineError::BadRow { row, column, .. } => assert_eq!((row, column.as_str()), (3_001, "ts")),
        other => panic!("expected a bad-row error, got {other}"),
    }
}

/// A two-column CSV input under `policy`, reading `raw/*`.
fn bad_input_job(format: &str, extra: &str, policy: &str) -> JobSpec {
    spec(&format!(
        "name = \"t\"\n[[step]]\nname = \"clean\"\n[step.inputs.raw]\npath = \"raw/*\"\nformat = \"{format}\"\n{extra}\n\
         columns = [[\"id\", \"i64\"], [\"name\", \"str\"]]\nbad_rows = \"{policy}\"\n[step.outputs.clean]\npath = \"clean\"\n\
         sql = \"SELECT * FROM raw\"\n"
    ))
}

#[test]
fn empty_and_header_only_files_hold_no_rows() {
    let dir = tempfile::tempdir().unwrap();
    for policy in ["fail", "skip", "quarantine"] {
        let job = bad_input_job("csv", "", policy);
        let empty = write(dir.path(), &format!("{policy}/empty.csv"), "");
        let header = write(dir.path(), &format!("{policy}/header.csv"), "id,name\n");
        let data = write(dir.path(), &format!("{policy}/data.csv"), "id,name\n1,a\n");
        let out = dir.path().join(format!("out-{policy}"));
        let stats = run(&job, &[("raw", vec![empty.clone(), header.clone(), data])], &out, None)
            .unwrap_or_else(|e| panic!("{policy}: {e}"));
        assert_eq!(stats.outputs["clean"].rows, 1, "{policy}");
        let only_empty = run(&job, &[("raw", vec![empty, header])], &dir.path().join(format!("none-{policy}")), None)
            .unwrap_or_else(|e| panic!("{policy}: {e}"));
        assert_eq!(only_empty.outputs["clean"].rows, 0, "{policy}");
    }
}

#[test]
fn unreadable_files_fail_at_once_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // Plain text where gzip is declared.
    let plain = write(dir.path(), "raw/plain.csv.gz", "id,name\n1,a\n");
    let job = bad_input_job("csv", "compression = \"gzip\"", "fail");
    let err = run(&job, &[("raw", vec![plain])], &dir.path().join("o1"), None).unwrap_err();
    assert!(err.to_string().contains("plain.csv.gz") && err.to_string().contains("magic bytes"), "{err}");
    assert!(err.is_permanent(), "no retry can fix the file: {err}");
    // A Parquet file cut short.
    let cut = write(dir.path(), "raw/cut.parquet", "PAR1\u{0}\u{0}not the rest");
    let job = spec(
        "name = \"t\"\n[[step]]\nname = \"clean\"\n[step.inputs.raw]\npath = \"raw/*\"\nformat = \"parquet\"\n\
         [step.outputs.clean]\npath = \"clean\"\nsql = \"SELECT * FROM raw\"\n",
    );
    let err = run(&job, &[("raw", vec![cut])], &dir.path().join("o2"), None).unwrap_err();
    assert!(err.to_string().contains("cut.parquet"), "{err}");
    assert!(err.is_permanent(), "{err}");
}

#[test]
fn csv_columns_are_read_by_name_in_every_policy_and_a_renamed_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    for policy in ["fail", "skip", "quarantine"] {
        let job = bad_input_job("csv", "", policy);
        // Two files of one input, their columns in different orders, one with a column more.
        let a = write(dir.path(), &format!("{policy}/a.csv"), "id,name\n1,a\n");
        let b = write(dir.path(), &format!("{policy}/b.csv"), "name,extra,id\nb,x,2\n");
        let out = dir.path().join(format!("out-{policy}"));
        let stats = run(&job, &[("raw", vec![a, b])], &out, None).unwrap_or_else(|e| panic!("{policy}: {e}"));
        assert_eq!(stats.outputs["clean"].rows, 2, "{policy}: {stats:?}");
        let df = read_dir_parquet(&out.join("clean")).sort(["id"], Default::default()).unwrap();
        let names: Vec<&str> = df.column("name").unwrap().str().unwrap().iter().flatten().collect();
        assert_eq!(names, ["a", "b"], "{policy}: each value under its own name");
        // A renamed column fails at once, naming the file and the column.
        let renamed = write(dir.path(), &format!("{policy}/r/renamed.csv"), "id,nom\n1,a\n");
        let err = run(&job, &[("raw", vec![renamed])], &dir.path().join(format!("r-{policy}")), None).unwrap_err();
        assert!(err.to_string().contains("renamed.csv") && err.to_string().contains("\"name\""), "{policy}: {err}");
        assert!(err.is_permanent());
    }
}

#[test]
fn a_corrupt_stream_and_non_utf8_text_are_named_by_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let job = bad_input_job("csv", "", "fail");
    std::fs::create_dir_all(dir.path().join("raw")).unwrap();
    // A gzip stream whose body is garbage.
    let good = write_gz(dir.path(), "raw/x.csv.gz", "id,name\n1,a\n2,b\n");
    let mut bytes = std::fs::read(&good).unwrap();
    let cut = bytes.len() / 2;
    bytes[cut..].iter_mut().for_each(|b| *b ^= 0x5a);
    let corrupt = dir.path().join("raw/corrupt.csv.gz");
    std::fs::write(&corrupt, bytes).unwrap();
    let err = run(&job, &[("raw", vec![good, corrupt])], &dir.path().join("o1"), None).unwrap_err();
    let said = err.to_string();
    assert!(said.contains("corrupt.csv.gz") && (said.contains("gzip") || said.contains("deflate")), "{said}");
    assert!(err.is_permanent(), "{err}");
    // Without a header the break is found only when the plan runs; it is still named.
    let headless = bad_input_job("csv", "header = false", "fail");
    let body = (0..5000).map(|i| format!("{i},name{i}\n")).collect::<String>();
    let long = write_gz(dir.path(), "raw/long.csv.gz", &body);
    let mut bytes = std::fs::read(&long).unwrap();
    let cut = bytes.len() / 2;
    bytes[cut..].iter_mut().for_each(|b| *b ^= 0x5a);
    std::fs::write(&long, bytes).unwrap();
    let err = run(&headless, &[("raw", vec![long])], &dir.path().join("o3"), None).unwrap_err();
    let said = err.to_string();
    assert!(said.contains("long.csv.gz") && said.contains("corrupt gzip stream"), "{said}");
    assert!(err.is_permanent(), "{err}");
    // Latin-1 bytes on the third line.
    let latin = dir.path().join("raw/latin.csv");
    std::fs::write(&latin, b"id,name\n1,a\n2,caf\xe9\n").unwrap();
    let err = run(&job, &[("raw", vec![latin])], &dir.path().join("o2"), None).unwrap_err();
    assert!(err.to_string().contains("latin.csv") && err.to_string().contains("line 3"), "{err}");
}

fn quarantined(out: &Path, input: &str) -> DataFrame {
    LazyFrame::scan_parquet(
        PlRefPath::new(out.join(format!("_quarantine/{input}/item0.parquet")).to_string_lossy().as_ref()),
        Default::default(),
    )
    .unwrap()
    .sort(["row"], Default::default())
    .collect()
    .unwrap()
}

#[test]
fn lines_that_are_not_utf8_are_set_aside_under_skip_and_quarantine() {
    let dir = tempfile::tempdir().unwrap();
    // Latin-1 "café" on the second data row of a CSV, and on the second line of an NDJSON file.
    let csv = dir.path().join("raw/latin.csv");
    std::fs::create_dir_all(csv.parent().unwrap()).unwrap();
    std::fs::write(&csv, b"id,name\n1,a\n2,caf\xe9\n3,c\n").unwrap();
    let ndjson = dir.path().join("raw/latin.ndjson");
    std::fs::write(&ndjson, b"{\"id\":1,\"name\":\"a\"}\n{\"id\":2,\"name\":\"caf\xe9\"}\n{\"id\":3,\"name\":\"c\"}\n")
        .unwrap();
    for (format, file) in [("csv", &csv), ("ndjson", &ndjson)] {
        for policy in ["skip", "quarantine"] {
            let job = bad_input_job(format, "", policy);
            let out = dir.path().join(format!("out-{format}-{policy}"));
            let stats = run(&job, &[("raw", vec![file.clone()])], &out, None)
                .unwrap_or_else(|e| panic!("{format} {policy}: {e}"));
            assert_eq!(stats.outputs["clean"].rows, 2, "{format} {policy}: the good rows are kept");
            let ids = read_dir_parquet(&out.join("clean")).sort(["id"], Default::default()).unwrap();
            let ids: Vec<i64> = ids.column("id").unwrap().i64().unwrap().into_no_null_iter().collect();
            assert_eq!(ids, [1, 3], "{format} {policy}");
            if policy == "quarantine" {
                assert_eq!(stats.rows_quarantined["raw"], 1, "{format}");
                let q = quarantined(&out, "raw");
                assert_eq!(q.column("row").unwrap().u64().unwrap().get(0), Some(2), "{format}: the row is named");
                let reason = q.column("reason").unwrap().str().unwrap().get(0).unwrap().to_string();
                assert!(reason.contains("not UTF-8"), "{format}: {reason}");
            }
        }
        // Under `fail` the item still fails, naming the file.
        let err = run(
            &bad_input_job(format, "", "fail"),
            &[("raw", vec![file.clone()])],
            &dir.path().join(format!("f-{format}")),
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains(&format!("latin.{format}")), "{format}: {err}");
    }
}

#[test]
fn a_declared_parquet_column_that_is_absent_is_named_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("in/a.parquet");
    write_parquet(&a, df!("user_id" => ["u1"], "n" => [1i64]).unwrap());
    let job = spec(
        "name = \"t\"\n[[step]]\nname = \"s\"\n[step.inputs.p]\npath = \"in/*.parquet\"\nformat = \"parquet\"\n\
         columns = [[\"user_id\", \"str\"], [\"amount\", \"f64\"]]\n[step.outputs.o]\npath = \"o\"\n",
    );
    let err = run(&job, &[("p", vec![a])], &dir.path().join("o"), None).unwrap_err();
    let said = err.to_string();
    assert!(said.contains("a.parquet") && said.contains("\"amount\""), "{said}");
    assert!(err.is_permanent(), "{said}");
    assert!(!dir.path().join("o/o").exists(), "nothing is written");
}

#[test]
fn a_hive_key_named_like_a_column_is_refused_where_it_is_written_and_where_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    // Written: a monthly output under month={partition_key} whose rows carry their own month.
    let f = write(dir.path(), "raw/x.csv", "day,month,n\n2024-01-05,2024-01,1\n");
    let job = spec(
        "name = \"t\"\n[[step]]\nname = \"s\"\n[step.inputs.raw]\npath = \"raw/*.csv\"\nformat = \"csv\"\n\
         [step.outputs.clean]\npath = \"clean/month={partition_key}\"\n",
    );
    let p = Partition::from_key("2024-01").unwrap();
    let err = run(&job, &[("raw", vec![f])], &dir.path().join("o1"), Some(&p)).unwrap_err();
    let said = err.to_string();
    assert!(
        said.contains("\"clean\"") && said.contains("\"month\" a hive key") && said.contains("column \"month\""),
        "{said}"
    );
    assert!(err.is_permanent(), "{said}");
    // Read: files written elsewhere with the key both in their path and in their columns.
    let a = dir.path().join("in/month=2024-01/a.parquet");
    write_parquet(&a, df!("month" => ["2024-01-31"], "n" => [1i64]).unwrap());
    let reader = spec(
        "name = \"t\"\n[[step]]\nname = \"s\"\n[step.inputs.p]\npath = \"in/**/*.parquet\"\nformat = \"parquet\"\n\
         hive = true\n[step.outputs.o]\npath = \"o\"\n",
    );
    let err = run(&reader, &[("p", vec![a.clone()])], &dir.path().join("o2"), None).unwrap_err();
    let said = err.to_string();
    assert!(said.contains("a.parquet") && said.contains("hive key \"month\""), "{said}");
    assert!(err.is_permanent(), "{said}");
    // Without hive the same file reads.
    let plain = spec(
        "name = \"t\"\n[[step]]\nname = \"s\"\n[step.inputs.p]\npath = \"in/**/*.parquet\"\nformat = \"parquet\"\n\
         [step.outputs.o]\npath = \"o\"\n",
    );
    assert_eq!(run(&plain, &[("p", vec![a])], &dir.path().join("o3"), None).unwrap().outputs["o"].rows, 1);
}

#[test]
fn an_optional_input_that_matches_nothing_is_an_empty_table_of_its_columns() {
    let dir = tempfile::tempdir().unwrap();
    let raw = write(dir.path(), "raw/a.csv", "id,name\n1,a\n2,b\n");
    let job = spec(
        "name = \"t\"\n[[step]]\nname = \"s\"\n[step.inputs.raw]\npath = \"raw/*\"\nformat = \"csv\"\n\
         columns = [[\"id\", \"i64\"], [\"name\", \"str\"]]\n\
         [step.inputs.fixes]\npath = \"fixes/*\"\nformat = \"csv\"\nrequired = false\n\
         columns = [[\"id\", \"i64\"], [\"name\", \"str\"]]\n\
         [step.outputs.o]\npath = \"o\"\n\
         sql = \"SELECT r.id, COALESCE(f.name, r.name) AS name FROM raw r LEFT JOIN fixes f ON r.id = f.id\"\n",
    );
    let stats = run(&job, &[("raw", vec![raw.clone()]), ("fixes", vec![])], &dir.path().join("o1"), None).unwrap();
    assert_eq!(stats.outputs["o"].rows, 2);
    assert_eq!(stats.rows_in.get("fixes").copied().unwrap_or(0), 0);
    let fix = write(dir.path(), "fixes/f.csv", "id,name\n2,B\n");
    run(&job, &[("raw", vec![raw.clone()]), ("fixes", vec![fix])], &dir.path().join("o2"), None).unwrap();
    let df = read_dir_parquet(&dir.path().join("o2/o")).sort(["id"], Default::default()).unwrap();
    let names: Vec<&str> = df.column("name").unwrap().str().unwrap().iter().flatten().collect();
    assert_eq!(names, ["a", "B"], "the same SQL reads the input once it has a file");
    // The required one is still required.
    let err = run(&job, &[("raw", vec![]), ("fixes", vec![])], &dir.path().join("o3"), None).unwrap_err();
    assert!(err.to_string().contains("raw/*"), "{err}");
}

#[test]
fn a_corrupt_zstd_stream_and_a_parquet_file_corrupt_inside_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let job = bad_input_job("csv", "", "fail");
    let body = (0..20_000).map(|i| format!("{i},name{i}\n")).collect::<String>();
    let mut bytes = zstd::encode_all(format!("id,name\n{body}").as_bytes(), 3).unwrap();
    let cut = bytes.len() / 2;
    bytes[cut..].iter_mut().for_each(|b| *b ^= 0x5a);
    let corrupt = dir.path().join("raw/corrupt.csv.zst");
    std::fs::create_dir_all(corrupt.parent().unwrap()).unwrap();
    std::fs::write(&corrupt, bytes).unwrap();
    let err = run(&job, &[("raw", vec![corrupt])], &dir.path().join("o1"), None).unwrap_err();
    let said = err.to_string();
    assert!(said.contains("corrupt.csv.zst") && said.contains("zstd"), "{said}");
    assert!(err.is_permanent(), "{said}");
    // A Parquet file whose footer is sound and whose data pages are not.
    let good = dir.path().join("p/good.parquet");
    let n = 50_000i64;
    write_parquet(
        &good,
        df!("id" => (0..n).collect::<Vec<_>>(), "name" => (0..n).map(|i| format!("n{i}")).collect::<Vec<_>>()).unwrap(),
    );
    let mut bytes = std::fs::read(&good).unwrap();
    let (from, to) = (64, bytes.len() / 2);
    bytes[from..to].iter_mut().for_each(|b| *b ^= 0x5a);
    let broken = dir.path().join("p/broken.parquet");
    std::fs::write(&broken, bytes).unwrap();
    let job = spec(
        "name = \"t\"\n[[step]]\nname = \"s\"\n[step.inputs.p]\npath = \"p/*\"\nformat = \"parquet\"\n\
         [step.outputs.o]\npath = \"o\"\nsql = \"SELECT * FROM p\"\n",
    );
    let err = run(&job, &[("p", vec![good, broken])], &dir.path().join("o2"), None).unwrap_err();
    let said = err.to_string();
    assert!(said.contains("broken.parquet"), "{said}");
    assert!(err.is_permanent(), "{said}");
}

#[test]
fn each_input_is_scanned_once_however_many_plans_count_it() {
    // The `fail` policy counts rows read, ragged rows and missing required values, and `skip`
    // counts what it drops, beside the output sinks. They are one query: Polars' common-subplan
    // elimination gives each input one scan, feeding every plan that reads it.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("in")).unwrap();
    let csv = write_gz(dir.path(), "in/a.csv.gz", "a,1\nb,2\nc,3\n");
    let ndjson = write(dir.path(), "in/a.ndjson", "{\"k\":\"a\",\"v\":1}\n{\"k\":\"b\",\"v\":2}\n");
    let cases = [("csv", "Csv SCAN", &csv), ("ndjson", "NDJson SCAN", &ndjson)];
    for ((format, scan, file), policy) in cases.iter().flat_map(|c| ["fail", "skip", "quarantine"].map(|p| (c, p))) {
        let header = if *format == "csv" { "header = false" } else { "" };
        let job = spec(&format!(
            r#"
name = "once"
[[step]]
name = "s"
[step.inputs.t]
path = "in/*"
format = "{format}"
{header}
bad_rows = "{policy}"
columns = [{{ name = "k", dtype = "str", required = true }}, ["v", "i64"]]
[step.outputs.one]
path = "one"
sql = "SELECT k FROM t"
[step.outputs.two]
path = "two"
sql = "SELECT v FROM t WHERE v > 1"
"#
        ));
        let inputs: BTreeMap<String, Vec<LocalFile>> = [("t".to_string(), vec![local(file)])].into();
        let out = dir.path().join(format!("out-{format}-{policy}"));
        let run = ItemRun { step: &job.steps[0], partition: None, inputs, out_dir: &out, file_tag: "i", checks: &[] };
        let plan = runner_engine::explain_item(&run).unwrap();
        let scans = plan.matches(scan).count();
        assert_eq!(scans, 1, "{format} {policy}: one scan of the input, however many plans read it:\n{plan}");
    }
}

#[test]
fn max_rows_per_file_bounds_every_file_with_and_without_hive_keys() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for i in 0..2500 {
        text.push_str(&format!("{i},u{},2024-01-0{} 10:00:00,1.5,true\n", i % 7, 1 + i % 2));
    }
    let f = write_gz(dir.path(), "a.csv.gz", &text);
    let job = spec(
        &CSV_JOB
            .replace("POLICY", "fail")
            .replace("row_group_size = 1000", "row_group_size = 300\nmax_rows_per_file = 1000")
            .replace(
                "sql = \"SELECT id, user_id, ts, amount, ok, CAST(ts AS DATE) AS day FROM raw\"",
                "sql = \"SELECT id, user_id, ts, amount, ok, CAST(ts AS DATE) AS day FROM raw\"\n\
                 [step.outputs.flat]\npath = \"flat\"\nmax_rows_per_file = 1000\nsql = \"SELECT id FROM raw\"",
            ),
    );
    let out = dir.path().join("out");
    let stats = run(&job, &[("raw", vec![f])], &out, None).unwrap();

    let flat = &stats.outputs["flat"];
    let rows: Vec<u64> = flat.files.iter().map(|(_, n)| *n).collect();
    assert_eq!(rows.iter().sum::<u64>(), 2500);
    assert_eq!(rows.len(), 3, "2,500 rows in files of at most 1,000: {:?}", flat.files);
    assert!(rows.iter().all(|&n| n <= 1000), "{:?}", flat.files);
    let mut ids: Vec<i64> =
        read_dir_parquet(&out.join("flat")).column("id").unwrap().i64().unwrap().into_no_null_iter().collect();
    ids.sort();
    assert_eq!(ids, (0..2500).collect::<Vec<i64>>(), "every row once");

    let clean = &stats.outputs["clean"];
    assert_eq!(clean.rows_by_hive_key.get("day=2024-01-01"), Some(&1250));
    for day in ["day=2024-01-01", "day=2024-01-02"] {
        let files: Vec<u64> = clean.files.iter().filter(|(p, _)| p.starts_with(day)).map(|(_, n)| *n).collect();
        assert_eq!(files.len(), 2, "1,250 rows of {day} in files of at most 1,000: {:?}", clean.files);
        assert!(files.iter().all(|&n| n <= 1000), "{:?}", clean.files);
    }
}

#[test]
fn an_aggregate_reduction_two_calls_share_is_computed_once() {
    // `sum(x)` and `avg(x)` of a decimal both take x's exact sum: one reduction, read twice.
    let dir = tempfile::tempdir().unwrap();
    let csv = write(dir.path(), "t.csv", "a,1.25\na,2.50\nb,-3.10\nb,\n");
    let job = spec(
        r#"
name = "shared"
[[step]]
name = "s"
[step.inputs.t]
path = "t.csv"
format = "csv"
header = false
columns = [["k", "str"], ["v", "str"]]
[step.outputs.o]
path = "o"
sql = "SELECT k, sum(CAST(v AS DECIMAL(10,2))) AS s, avg(CAST(v AS DECIMAL(10,2))) AS a FROM t GROUP BY k ORDER BY k"
"#,
    );
    let inputs: BTreeMap<String, Vec<LocalFile>> = [("t".to_string(), vec![local(&csv)])].into();
    let out = dir.path().join("out");
    let item = ItemRun { step: &job.steps[0], partition: None, inputs, out_dir: &out, file_tag: "i", checks: &[] };
    let plan = runner_engine::explain_item(&item).unwrap();
    let aggregate = plan.lines().skip_while(|l| !l.contains("AGGREGATE")).nth(1).unwrap_or_default();
    assert_eq!(aggregate.matches(".sum()").count(), 1, "one sum for both calls:\n{plan}");
    run(&job, &[("t", vec![csv])], &out, None).unwrap();
    let df = read_dir_parquet(&out);
    let a: Vec<Option<f64>> = df.column("a").unwrap().f64().unwrap().iter().collect();
    // a: (1.25 + 2.50) / 2; b: -3.10 alone (the empty value is NULL, not counted).
    assert_eq!(a, [Some(1.875), Some(-3.1)]);
    let s = df.column("s").unwrap().cast(&DataType::String).unwrap();
    let s: Vec<Option<&str>> = s.str().unwrap().iter().collect();
    assert_eq!(s, [Some("3.75"), Some("-3.10")]);
}
