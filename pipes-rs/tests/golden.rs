//! Compares what pipes-rs accepts and sends with captures from the real Dagster packages.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use dagster_pipes::context_loader::ContextSource;
use dagster_pipes::writer::{MessageSink, MessageTarget, MessagesParams};
use dagster_pipes::{
    AssetCheck, AssetMaterialization, ColumnConstraints, ContextData, ExceptionInfo, LogLevel, Metadata, MetadataValue,
    PipesContext, PipesError, S3Options, Severity, Stream, Table, TableCell, TableColumn, TableColumnLineage,
    TableSchema,
};
use serde_json::{Value, json};

fn golden(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn golden_lines(name: &str) -> Vec<Value> {
    golden(name).lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// A sink that keeps what it is sent, to read back in the test.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl MessageSink for Capture {
    fn send(&mut self, line: &[u8]) -> std::io::Result<()> {
        self.0.lock().unwrap().extend_from_slice(line);
        Ok(())
    }
    fn finish(&mut self) -> dagster_pipes::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn lines(&self) -> Vec<Value> {
        let bytes = self.0.lock().unwrap().clone();
        assert!(bytes.is_empty() || bytes.ends_with(b"\n"), "every message ends its line");
        String::from_utf8(bytes).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }
}

fn session(data: Value) -> (PipesContext, Capture) {
    let capture = Capture::default();
    let data: ContextData = serde_json::from_value(data).unwrap();
    let ctx = PipesContext::with_sink(data, Box::new(capture.clone())).unwrap();
    (ctx, capture)
}

fn asset_context(keys: &[&str]) -> Value {
    json!({
        "asset_keys": keys, "code_version_by_asset_key": null, "provenance_by_asset_key": null,
        "partition_key": null, "partition_key_range": null, "partition_time_window": null,
        "run_id": "r", "job_name": "j", "retry_number": 0, "extras": {}
    })
}

#[test]
fn every_received_context_loads_with_reference_semantics() {
    for name in ["daily_tempfile", "multi_env", "op", "prov", "range", "static"] {
        let file: Value = serde_json::from_str(&golden(&format!("context_received_{name}.json"))).unwrap();
        let ctx_params = file["context_params"].as_object().unwrap();
        let source = ContextSource::from_params(ctx_params).unwrap();
        let msg_params = MessagesParams::from_params(file["messages_params"].as_object().unwrap()).unwrap();
        assert!(matches!(msg_params.target, MessageTarget::File(_)), "{name}");
        assert!(!msg_params.include_stdio_in_messages);
        let data: ContextData = match &source {
            ContextSource::Data(_) => source.load(&S3Options::default()).unwrap(),
            ContextSource::Path(_) => ContextData::from_json(file["context_data"].to_string().as_bytes()).unwrap(),
            other => panic!("unexpected source {other:?}"),
        };
        // Round trip: what we read is what was sent.
        assert_eq!(serde_json::to_value(&data).unwrap(), file["context_data"], "{name}");
        match name {
            "daily_tempfile" => {
                assert_eq!(data.asset_key().unwrap(), "prefix/daily_asset");
                assert_eq!(data.code_version().unwrap(), Some("v1"));
                assert_eq!(data.partition_key().unwrap(), "2024-01-02");
                assert_eq!(data.partition_key_range().unwrap().end, "2024-01-02");
                let w = data.partition_time_window().unwrap().unwrap();
                assert_eq!(w.start.timestamp(), 1_704_153_600);
                assert_eq!((w.end - w.start).num_hours(), 24);
                assert_eq!(data.get_extra("foo").unwrap(), "bar");
                assert_eq!(data.get_extra_as::<i64>("n").unwrap(), 1);
                assert!(data.is_partition_step() && data.is_asset_step());
                assert_eq!(
                    dagster_pipes::asset_key::to_path(data.asset_key().unwrap()).unwrap(),
                    ["prefix", "daily_asset"]
                );
            }
            "multi_env" => {
                assert!(matches!(data.asset_key(), Err(PipesError::AmbiguousAssetKey { count: 2, .. })));
                assert_eq!(data.asset_keys().unwrap(), ["a1", "a2"]);
                assert_eq!(data.code_version_by_asset_key().unwrap()["a2"].as_deref(), Some("cv2"));
            }
            "op" => {
                assert!(!data.is_asset_step());
                assert!(data.asset_keys().is_err());
                assert_eq!(data.job_name(), Some("my_job"));
            }
            "prov" => {
                let p = data.provenance().unwrap().unwrap();
                assert_eq!(p.code_version, "down1");
                assert!(!p.is_user_provided);
                assert!(p.input_data_versions.contains_key("upstream"));
            }
            "range" => {
                // A single-run backfill: Dagster sends no partition at all.
                assert!(!data.is_partition_step());
                let err = data.partition_key().unwrap_err().to_string();
                assert!(err.contains("extras"), "the error explains ranged runs: {err}");
                assert!(data.partition_time_window().is_err());
            }
            "static" => {
                assert_eq!(data.partition_key().unwrap(), "y");
                assert_eq!(data.partition_time_window().unwrap(), None);
            }
            _ => unreachable!(),
        }
    }
}

#[test]
fn handmade_context_with_every_field() {
    let data = ContextData::from_json(golden("handmade_context_all_fields.json").as_bytes()).unwrap();
    assert_eq!(data.asset_keys().unwrap().len(), 2);
    assert_eq!(dagster_pipes::asset_key::to_path(&data.asset_keys().unwrap()[1]).unwrap(), ["prefix", "other/asset"]);
    assert_eq!(data.run_id(), "6b1b3a2e-0000-4000-8000-000000000000");
    assert_eq!(data.retry_number(), 0);
    assert_eq!(data.extras()["foo"], "bar");
}

/// Everything the reference writes in `python_all_methods`, sent through our typed API.
#[test]
fn all_methods_match_the_reference_output() {
    let (ctx, capture) = session(asset_context(&["my_asset", "prefix/other\\/asset"]));
    let log = ctx.logger();
    log.debug("Debug message").unwrap();
    log.info("Info message").unwrap();
    log.warning("Warning message").unwrap();
    log.error("Error message").unwrap();
    log.critical("Critical message").unwrap();

    let table = {
        let mut t = Table::new(vec![
            TableColumn::new("a", "int"),
            TableColumn::new("b", "string")
                .description("col b")
                .constraints(ColumnConstraints { nullable: Some(false), unique: Some(true), other: Some(vec![]) })
                .tag("pii", "no"),
        ]);
        t.push_row([TableCell::from(1), TableCell::from("x")]);
        t
    };
    let md = Metadata::new()
        .with("inferred_int", MetadataValue::Infer(json!(1)))
        .with("inferred_float", MetadataValue::Infer(json!(0.1)))
        .with("inferred_str", MetadataValue::Infer(json!("hello")))
        .with("inferred_bool", MetadataValue::Infer(json!(true)))
        .with("inferred_none", MetadataValue::Infer(Value::Null))
        .with("inferred_list", MetadataValue::Infer(json!([1, 2, 3])))
        .with("typed_url", MetadataValue::Url("https://dagster.io".into()))
        .with("typed_path", MetadataValue::Path("/dev/null".into()))
        .with("typed_notebook", MetadataValue::Notebook("notebook.ipynb".into()))
        .with("typed_md", MetadataValue::Md("**markdown**".into()))
        .with("typed_json", MetadataValue::Json(json!({"foo": "bar"})))
        .with("typed_text", "hello")
        .with("typed_int", 1)
        .with("typed_float", 0.1)
        .with("typed_bool", false)
        .with("typed_null", MetadataValue::Null)
        .with("typed_asset", MetadataValue::Asset("foo/bar".into()))
        .with("typed_dagster_run", MetadataValue::DagsterRun("db892d7f-0031-4747-973d-22e8b9095d9d".into()))
        .with("typed_timestamp", MetadataValue::Timestamp(1_704_067_200.0))
        .with("typed_table", table)
        .with("typed_table_schema", TableSchema::new(vec![TableColumn::new("a", "int")]))
        .with("typed_table_column_lineage", TableColumnLineage::default().dep("a", "upstream", "x"))
        .with("explicit_infer", MetadataValue::Infer(json!(42)));
    ctx.report_asset_materialization(
        AssetMaterialization::new().asset_key("my_asset").data_version("alpha").metadata(md),
    )
    .unwrap();
    ctx.report_asset_materialization(AssetMaterialization::new().asset_key("prefix/other\\/asset")).unwrap();
    ctx.report_asset_check(AssetCheck::new("my_check", true).asset_key("my_asset")).unwrap();
    ctx.report_asset_check(
        AssetCheck::new("my_check2", false)
            .asset_key("my_asset")
            .severity(Severity::Warn)
            .metadata(Metadata::new().with("n", MetadataValue::Infer(json!(3)))),
    )
    .unwrap();
    ctx.report_custom_message(json!({"foo": "bar", "n": [1, 2]})).unwrap();
    ctx.report_custom_message("Hello from external process!").unwrap();
    ctx.log_external_stream(Stream::Stdout, "some text\n", None).unwrap();
    let extras = json!({"k": "v"});
    ctx.log_external_stream(Stream::Stderr, "err text\n", extras.as_object()).unwrap();
    ctx.close().unwrap();

    let expected: Vec<Value> = golden_lines("python_all_methods.messages.jsonl")
        .into_iter()
        // The reference lets an invalid severity through (and Dagster then dies); we can't.
        .filter(|m| m["params"]["severity"] != "FATAL")
        .collect();
    let got = capture.lines();
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g, e);
    }
    assert!("FATAL".parse::<Severity>().is_err());
}

#[test]
fn op_step_accepts_any_key() {
    let mut data = asset_context(&[]);
    data["asset_keys"] = Value::Null;
    let (ctx, capture) = session(data);
    ctx.report_asset_materialization(AssetMaterialization::new().asset_key("anything/goes")).unwrap();
    assert!(matches!(ctx.report_asset_materialization(AssetMaterialization::new()), Err(PipesError::NoAssetKey)));
    ctx.close().unwrap();
    assert_eq!(capture.lines(), golden_lines("python_op_step.messages.jsonl"));
}

fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(_) => json!("array"),
        Value::String(_) => json!("string"),
        other => other.clone(),
    }
}

#[test]
fn closed_with_exception_has_the_reference_shape() {
    let (ctx, capture) = session(asset_context(&["my_asset"]));
    ctx.report_asset_materialization(AssetMaterialization::new()).unwrap();
    let mut e = ExceptionInfo::new("RuntimeError", "Very bad error has happened!").with_stack(vec!["frame".into()]);
    e.cause = Some(Box::new(ExceptionInfo::new("ValueError", "inner").with_stack(vec!["f".into()])));
    ctx.close_with_exception(&e).unwrap();
    let got = capture.lines();
    let expected = golden_lines("python_closed_with_exception.messages.jsonl");
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(shape(g), shape(e));
    }
    // The harness wants the bare message.
    assert_eq!(got[2]["params"]["exception"]["message"], "Very bad error has happened!");
}

#[test]
fn messages_fit_the_blob_store_chunks() {
    let (ctx, capture) = session(asset_context(&["my_asset"]));
    ctx.logger().info("first").unwrap();
    ctx.logger().info("second").unwrap();
    ctx.report_asset_materialization(
        AssetMaterialization::new().asset_key("my_asset").with("n", MetadataValue::Infer(json!(1))),
    )
    .unwrap();
    ctx.close().unwrap();
    let mut expected = golden_lines("blobstore_chunk_1.json");
    expected.extend(golden_lines("blobstore_chunk_2.json"));
    assert_eq!(capture.lines(), expected);
}

// ---- The silent-failure modes of other implementations (protocol notes §8) ----

#[test]
fn closed_is_sent_exactly_once_and_nothing_after_it() {
    let (ctx, capture) = session(asset_context(&["my_asset"]));
    ctx.close().unwrap();
    ctx.close().unwrap();
    assert!(matches!(ctx.logger().info("late"), Err(PipesError::Closed { method: "log" })));
    assert!(matches!(ctx.report_asset_materialization(AssetMaterialization::new()), Err(PipesError::Closed { .. })));
    assert!(ctx.report_custom_message(1).is_err());
    drop(ctx);
    let methods: Vec<_> = capture.lines().iter().map(|m| m["method"].as_str().unwrap().to_string()).collect();
    assert_eq!(methods, ["opened", "closed"]);
}

#[test]
fn dropping_the_last_handle_closes_once() {
    let (ctx, capture) = session(asset_context(&["my_asset"]));
    let clone = ctx.clone();
    drop(ctx);
    clone.logger().info("still open").unwrap();
    drop(clone);
    let methods: Vec<_> = capture.lines().iter().map(|m| m["method"].as_str().unwrap().to_string()).collect();
    assert_eq!(methods, ["opened", "log", "closed"]);
}

#[test]
fn duplicate_and_unknown_materializations_are_refused() {
    let (ctx, capture) = session(asset_context(&["a", "b"]));
    assert!(matches!(
        ctx.report_asset_materialization(AssetMaterialization::new()),
        Err(PipesError::AmbiguousAssetKey { count: 2, .. })
    ));
    ctx.report_asset_materialization(AssetMaterialization::new().asset_key("a")).unwrap();
    assert!(matches!(
        ctx.report_asset_materialization(AssetMaterialization::new().asset_key("a")),
        Err(PipesError::DuplicateMaterialization { .. })
    ));
    assert!(matches!(
        ctx.report_asset_materialization(AssetMaterialization::new().asset_key("c")),
        Err(PipesError::UnknownAssetKey { .. })
    ));
    assert!(ctx.report_asset_check(AssetCheck::new("chk", true).asset_key("c")).is_err());
    assert!(ctx.report_asset_check(AssetCheck::new("", true).asset_key("a")).is_err());
    ctx.close().unwrap();
    assert_eq!(capture.lines().len(), 3, "opened, one materialization, closed");
}

#[test]
fn unrepresentable_metadata_is_refused_before_sending() {
    let (ctx, capture) = session(asset_context(&["a"]));
    let err = ctx.report_asset_materialization(AssetMaterialization::new().with("ratio", f64::NAN)).unwrap_err();
    assert!(err.to_string().contains("ratio"), "{err}");
    ctx.close().unwrap();
    assert_eq!(capture.lines().len(), 2);
}

#[test]
fn every_metadata_type_is_wrapped_and_none_is_job() {
    let all = vec![
        MetadataValue::Infer(json!(1)),
        MetadataValue::Text("t".into()),
        MetadataValue::Url("u".into()),
        MetadataValue::Path("p".into()),
        MetadataValue::Notebook("n".into()),
        MetadataValue::Md("m".into()),
        MetadataValue::DagsterRun("r".into()),
        MetadataValue::Json(json!({})),
        MetadataValue::Float(1.0),
        MetadataValue::Int(1),
        MetadataValue::Bool(true),
        MetadataValue::Timestamp(0.0),
        MetadataValue::Null,
        MetadataValue::Asset("a".into()),
        MetadataValue::Table(Table::default()),
        MetadataValue::TableSchema(TableSchema::default()),
        MetadataValue::TableColumnLineage(TableColumnLineage::default()),
    ];
    let types: std::collections::BTreeSet<_> = all.iter().map(MetadataValue::type_name).collect();
    assert_eq!(types.len(), 17);
    assert!(!types.contains("job"));
    for v in &all {
        let s = serde_json::to_value(v).unwrap();
        assert_eq!(s.as_object().unwrap().len(), 2, "{s}");
        assert_eq!(s["type"], v.type_name());
    }
    // Floats keep their decimal point, ints never gain one.
    assert_eq!(serde_json::to_string(&MetadataValue::Float(1.0)).unwrap(), r#"{"raw_value":1.0,"type":"float"}"#);
    assert_eq!(serde_json::to_string(&MetadataValue::Int(1)).unwrap(), r#"{"raw_value":1,"type":"int"}"#);
}

#[test]
fn log_levels_are_only_the_five() {
    let (ctx, capture) = session(asset_context(&["a"]));
    for level in [LogLevel::Debug, LogLevel::Info, LogLevel::Warning, LogLevel::Error, LogLevel::Critical] {
        ctx.log(level, "x").unwrap();
    }
    ctx.close().unwrap();
    let levels: Vec<_> =
        capture.lines().iter().filter_map(|m| m["params"]["level"].as_str().map(String::from)).collect();
    assert_eq!(levels, ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]);
}

#[test]
fn unorchestrated_process_gets_a_no_op_session() {
    let ctx = dagster_pipes::PipesBuilder::new()
        .params_loader(dagster_pipes::MapParamsLoader::default())
        .warn_when_unorchestrated(false)
        .open()
        .unwrap();
    assert!(!ctx.is_orchestrated());
    ctx.logger().info("goes nowhere").unwrap();
    ctx.report_asset_materialization(AssetMaterialization::new().with("n", 1)).unwrap();
    ctx.close().unwrap();
}

#[test]
fn orchestrated_but_broken_is_an_error() {
    let raw_json = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, br#"{"path": "/x"}"#);
    let open = |ctx: &str, msgs: &str| {
        dagster_pipes::PipesBuilder::new()
            .params_loader(dagster_pipes::MapParamsLoader::new([
                ("DAGSTER_PIPES_CONTEXT", ctx),
                ("DAGSTER_PIPES_MESSAGES", msgs),
            ]))
            .open()
    };
    let good_msgs = dagster_pipes::bootstrap::encode_params(&json!({"stdio": "stderr"}));
    // Base64 of JSON without zlib: the mistake another Rust project shipped.
    assert!(matches!(open(&raw_json, &good_msgs), Err(PipesError::Bootstrap { stage: "zlib", .. })));
    let missing = dagster_pipes::bootstrap::encode_params(&json!({"path": "/nonexistent/ctx.json"}));
    assert!(matches!(open(&missing, &good_msgs), Err(PipesError::ContextFile { .. })));
    let weird = dagster_pipes::bootstrap::encode_params(&json!({"socket": 1}));
    let dir = tempfile::tempdir().unwrap();
    let ctx_path = dir.path().join("ctx.json");
    std::fs::write(&ctx_path, asset_context(&["a"]).to_string()).unwrap();
    let ctx_ok = dagster_pipes::bootstrap::encode_params(&json!({"path": ctx_path}));
    assert!(matches!(open(&ctx_ok, &weird), Err(PipesError::UnknownMessageParams { .. })));
    // And the working combination opens, writing `opened` to the file.
    let msg_path = dir.path().join("messages");
    let msgs = dagster_pipes::bootstrap::encode_params(&json!({"path": msg_path}));
    let ctx = open(&ctx_ok, &msgs).unwrap();
    ctx.close().unwrap();
    let written = std::fs::read_to_string(&msg_path).unwrap();
    assert_eq!(written.lines().count(), 2);
    assert!(written.ends_with('\n'));
}
