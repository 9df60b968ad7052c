//! A job that uses the binary's own functions and operations is checked against what the binary
//! brings, before any data is read. This test binary installs one set for the whole process, as
//! a binary built with `runner::Extensions` does; `tests/spec.rs` runs with none (the plain runner).

use runner_spec::JobSpec;
use runner_spec::describe::code_version_with;
use runner_spec::extensions::{FunctionSig, Param, ParamKind, Signatures, TableOpSig, install};

fn brought(ua_version: &str) -> Signatures {
    let mut s = Signatures::default();
    s.functions.insert("ua_family".into(), FunctionSig { version: ua_version.into(), aggregate: false });
    s.functions.insert("host".into(), FunctionSig { version: "1".into(), aggregate: false });
    s.table_ops.insert(
        "sessionize".into(),
        TableOpSig {
            version: "3".into(),
            params: vec![Param::required("by", ParamKind::Text), Param::optional("gap_minutes", ParamKind::Float)],
        },
    );
    s
}

fn job(op: &str, sql: &str) -> String {
    format!(
        r#"
name = "web"
[[step]]
name = "clean"
[step.inputs.raw]
path = "raw/*.csv"
format = "csv"
columns = [["user_id", "str"], ["agent", "str"], ["url", "str"]]
ops = [{op}]
[step.outputs.clean]
path = "clean"
sql = "{sql}"
"#
    )
}

fn parse(text: &str) -> Result<JobSpec, String> {
    install(brought("1"));
    JobSpec::parse(text, "job.toml").map_err(|e| e.to_string())
}

const SESSIONIZE: &str = r#"{ op = "sessionize", by = "user_id", gap_minutes = 30 }"#;

#[test]
fn functions_and_operations_the_binary_has_are_taken_anywhere_in_the_sql() {
    parse(&job(
        SESSIONIZE,
        "WITH s AS (SELECT UA_FAMILY(agent) AS f FROM raw) SELECT f FROM s \
         UNION ALL SELECT host(url) FROM raw WHERE user_id IN (SELECT user_id FROM raw WHERE host(url) = 'a')",
    ))
    .unwrap();
}

#[test]
fn a_function_the_binary_lacks_is_refused_naming_what_it_has() {
    let e = parse(&job(SESSIONIZE, "SELECT ua_familly(agent) FROM raw")).unwrap_err();
    assert_eq!(
        e,
        "job.toml: step \"clean\" › output \"clean\" › sql: line 1, column 8: `ua_familly(agent)`: no function \
         \"ua_familly\": SQL has none of that name, and this binary's own functions are host, ua_family"
    );
}

#[test]
fn an_operation_the_binary_lacks_is_refused_naming_what_there_is() {
    let e = parse(&job(r#"{ op = "sesionize", by = "user_id" }"#, "SELECT * FROM raw")).unwrap_err();
    assert!(
        e.ends_with(
            "no operation \"sesionize\": the built-in ones are parse_json, unnest, explode, flatten, \
             and this binary's own are sessionize"
        ),
        "{e}"
    );
    assert!(e.contains("ops[0]"), "{e}");
}

#[test]
fn operation_parameters_are_checked_by_name_and_type() {
    let misspelt = parse(&job(r#"{ op = "sessionize", by = "user_id", gap_minuts = 30 }"#, "SELECT * FROM raw"));
    assert!(misspelt.unwrap_err().ends_with("no parameter \"gap_minuts\"; its parameters are: by, gap_minutes"));
    let missing = parse(&job(r#"{ op = "sessionize", gap_minutes = 30 }"#, "SELECT * FROM raw"));
    assert!(missing.unwrap_err().ends_with("parameter \"by\" (a string) is required"));
    let wrong = parse(&job(r#"{ op = "sessionize", by = "u", gap_minutes = "half an hour" }"#, "SELECT * FROM raw"));
    assert!(wrong.unwrap_err().ends_with("parameter \"gap_minutes\" must be a number"));
    // A built-in keeps its own strict fields.
    let builtin = parse(&job(r#"{ op = "explode", colum = "x" }"#, "SELECT * FROM raw")).unwrap_err();
    assert!(builtin.contains("colum"), "{builtin}");
}

#[test]
fn a_new_version_of_a_used_function_changes_the_step_version_and_no_other() {
    let uses = parse(&job(SESSIONIZE, "SELECT ua_family(agent) AS f FROM raw")).unwrap();
    let step = &uses.steps[0];
    assert_ne!(code_version_with(step, &brought("1")), code_version_with(step, &brought("2")));
    let other = parse(&job(SESSIONIZE, "SELECT host(url) AS h FROM raw")).unwrap();
    assert_eq!(code_version_with(&other.steps[0], &brought("1")), code_version_with(&other.steps[0], &brought("2")));
    assert_eq!(
        runner_spec::describe::extensions_used(step, &brought("1")),
        ["function ua_family@1", "op sessionize@3"]
    );
    // A step that uses nothing of the binary keeps the version the plain runner gives it.
    let plain = parse(&job(r#"{ op = "explode", column = "x" }"#, "SELECT * FROM raw")).unwrap();
    assert_eq!(
        code_version_with(&plain.steps[0], &brought("1")),
        code_version_with(&plain.steps[0], &Signatures::default())
    );
}
