//! Bootstrap: where the two Pipes values come from (env, CLI args, any string map) and how they
//! are encoded: `base64(zlib(json))`.

use std::collections::HashMap;
use std::io::{Read, Write};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use crate::error::{PipesError, Result};

/// The env var (and map key) that carries the context params.
pub const CONTEXT_ENV_VAR: &str = "DAGSTER_PIPES_CONTEXT";
/// The env var (and map key) that carries the message writer params.
pub const MESSAGES_ENV_VAR: &str = "DAGSTER_PIPES_MESSAGES";
/// The CLI flag that carries the context params.
pub const CONTEXT_CLI_FLAG: &str = "--dagster-pipes-context";
/// The CLI flag that carries the message writer params.
pub const MESSAGES_CLI_FLAG: &str = "--dagster-pipes-messages";

/// Decoded params: a JSON object.
pub type Params = Map<String, Value>;

/// Encodes params the way the orchestrator does: JSON, zlib (RFC 1950), standard base64.
pub fn encode_params(params: &Value) -> String {
    let json = serde_json::to_vec(params).unwrap_or_default();
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(&json);
    let compressed = encoder.finish().unwrap_or_default();
    STANDARD.encode(compressed)
}

/// Decodes one bootstrap value into a JSON object. `name` is used in errors.
pub fn decode_params(name: &str, encoded: &str) -> Result<Params> {
    let fail = |stage: &'static str, detail: String| PipesError::Bootstrap { name: name.to_string(), stage, detail };
    let cleaned: String = encoded.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let compressed = STANDARD.decode(cleaned.as_bytes()).map_err(|e| fail("base64", e.to_string()))?;
    let mut json = Vec::new();
    flate2::read::ZlibDecoder::new(compressed.as_slice())
        .read_to_end(&mut json)
        .map_err(|e| fail("zlib", e.to_string()))?;
    match serde_json::from_slice::<Value>(&json).map_err(|e| fail("json", e.to_string()))? {
        Value::Object(map) => Ok(map),
        other => Err(fail("json", format!("expected a JSON object, got {}", json_kind(&other)))),
    }
}

pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Where the bootstrap values come from.
pub trait ParamsLoader: Send + Sync {
    /// True when the process was launched by a Pipes orchestrator (the context value is present).
    fn is_dagster_pipes_process(&self) -> bool;
    /// The raw (still encoded) context value, if present.
    fn raw_context(&self) -> Option<String>;
    /// The raw (still encoded) messages value, if present.
    fn raw_messages(&self) -> Option<String>;
    /// A human name for errors: `env`, `cli` or `map`.
    fn source_name(&self) -> &'static str;

    /// Decoded context params.
    fn load_context_params(&self) -> Result<Params> {
        let raw = self.raw_context().ok_or_else(|| missing(self.source_name(), CONTEXT_ENV_VAR))?;
        decode_params(CONTEXT_ENV_VAR, &raw)
    }

    /// Decoded messages params.
    fn load_messages_params(&self) -> Result<Params> {
        let raw = self.raw_messages().ok_or_else(|| missing(self.source_name(), MESSAGES_ENV_VAR))?;
        decode_params(MESSAGES_ENV_VAR, &raw)
    }
}

fn missing(source: &str, name: &str) -> PipesError {
    PipesError::Bootstrap {
        name: name.to_string(),
        stage: "lookup",
        detail: format!("not present in the {source} params although the context is"),
    }
}

/// Reads the two env vars. The orchestrator's default.
#[derive(Debug, Default, Clone, Copy)]
pub struct EnvVarParamsLoader;

impl ParamsLoader for EnvVarParamsLoader {
    fn is_dagster_pipes_process(&self) -> bool {
        std::env::var_os(CONTEXT_ENV_VAR).is_some()
    }
    fn raw_context(&self) -> Option<String> {
        std::env::var(CONTEXT_ENV_VAR).ok()
    }
    fn raw_messages(&self) -> Option<String> {
        std::env::var(MESSAGES_ENV_VAR).ok()
    }
    fn source_name(&self) -> &'static str {
        "env"
    }
}

/// Reads `--dagster-pipes-context X` / `--dagster-pipes-messages X` (or the `--flag=X` form)
/// from command-line arguments.
#[derive(Debug, Clone)]
pub struct CliArgsParamsLoader {
    context: Option<String>,
    messages: Option<String>,
}

impl CliArgsParamsLoader {
    /// Reads the process's own arguments.
    pub fn from_env_args() -> Self {
        Self::new(std::env::args().skip(1))
    }

    /// Reads the given arguments (without the program name).
    pub fn new<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let args: Vec<String> = args.into_iter().map(Into::into).collect();
        Self { context: find_flag(&args, CONTEXT_CLI_FLAG), messages: find_flag(&args, MESSAGES_CLI_FLAG) }
    }
}

fn find_flag(args: &[String], flag: &str) -> Option<String> {
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == flag {
            return iter.next().cloned();
        }
        if let Some(value) = arg.strip_prefix(flag).and_then(|rest| rest.strip_prefix('=')) {
            return Some(value.to_string());
        }
    }
    None
}

impl ParamsLoader for CliArgsParamsLoader {
    fn is_dagster_pipes_process(&self) -> bool {
        self.context.is_some()
    }
    fn raw_context(&self) -> Option<String> {
        self.context.clone()
    }
    fn raw_messages(&self) -> Option<String> {
        self.messages.clone()
    }
    fn source_name(&self) -> &'static str {
        "cli"
    }
}

/// Reads the two values from any string map, such as an event payload, keyed like the env vars.
#[derive(Debug, Clone, Default)]
pub struct MapParamsLoader {
    map: HashMap<String, String>,
}

impl MapParamsLoader {
    /// Wraps a map that may hold `DAGSTER_PIPES_CONTEXT` and `DAGSTER_PIPES_MESSAGES`.
    pub fn new<I, K, V>(entries: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self { map: entries.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }
}

impl ParamsLoader for MapParamsLoader {
    fn is_dagster_pipes_process(&self) -> bool {
        self.map.contains_key(CONTEXT_ENV_VAR)
    }
    fn raw_context(&self) -> Option<String> {
        self.map.get(CONTEXT_ENV_VAR).cloned()
    }
    fn raw_messages(&self) -> Option<String> {
        self.map.get(MESSAGES_ENV_VAR).cloned()
    }
    fn source_name(&self) -> &'static str {
        "map"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // The exact vectors from the protocol notes, produced by the real orchestrator.
    const VECTORS: &[(&str, &str)] = &[
        (r#"{"path": "/tmp/ctx.json"}"#, "eJyrVipILMlQslJQ0i/JLdBPLqnQyyrOz1OqBQBpjQhu"),
        (
            r#"{"path": "/tmp/messages", "include_stdio_in_messages": false}"#,
            "eJyrVipILMlQslJQ0i/JLdDPTS0uTkxPLVbSUVDKzEvOKU1JjS8uScnMj8/Mi4dLWimkJeYUp9YCAIvLFdc=",
        ),
        (r#"{"stdio": "stderr"}"#, "eJyrViouScnMV7JSADFSi4qUagFBNAaS"),
        (r#"{"bucket": "b", "key_prefix": "abc"}"#, "eJyrVkoqTc5OLVGyUlBKUtJRUMpOrYwvKEpNy6wACSUmJSvVAgDRJQtF"),
    ];

    #[test]
    fn decodes_the_reference_vectors() {
        for (json_text, encoded) in VECTORS {
            let expected: Value = serde_json::from_str(json_text).unwrap();
            let decoded = decode_params("T", encoded).unwrap();
            assert_eq!(Value::Object(decoded), expected, "vector {encoded}");
        }
    }

    #[test]
    fn encode_round_trips() {
        for (json_text, _) in VECTORS {
            let value: Value = serde_json::from_str(json_text).unwrap();
            let encoded = encode_params(&value);
            assert!(encoded.starts_with("eJ"), "zlib header 78 9c encodes as eJ: {encoded}");
            assert_eq!(Value::Object(decode_params("T", &encoded).unwrap()), value);
        }
    }

    #[test]
    fn each_broken_stage_is_named() {
        let stage = |s: &str| match decode_params("X", s) {
            Err(PipesError::Bootstrap { stage, .. }) => stage,
            other => panic!("expected a bootstrap error, got {other:?}"),
        };
        assert_eq!(stage("!!!not base64"), "base64");
        // Valid base64 of raw (not zlib) JSON: the mistake another Rust project shipped.
        assert_eq!(stage(&STANDARD.encode(br#"{"path": "x"}"#)), "zlib");
        let not_json = {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(b"not json").unwrap();
            STANDARD.encode(e.finish().unwrap())
        };
        assert_eq!(stage(&not_json), "json");
        assert_eq!(stage(&encode_params(&json!([1, 2]))), "json");
    }

    #[test]
    fn cli_args_in_both_forms() {
        let enc = encode_params(&json!({"path": "/x"}));
        let loader = CliArgsParamsLoader::new([
            "--other".to_string(),
            CONTEXT_CLI_FLAG.to_string(),
            enc.clone(),
            format!("{MESSAGES_CLI_FLAG}={enc}"),
        ]);
        assert!(loader.is_dagster_pipes_process());
        assert_eq!(loader.load_context_params().unwrap()["path"], "/x");
        assert_eq!(loader.load_messages_params().unwrap()["path"], "/x");
        assert!(!CliArgsParamsLoader::new(["--x"]).is_dagster_pipes_process());
    }

    #[test]
    fn map_loader_and_missing_messages() {
        let enc = encode_params(&json!({"path": "/x"}));
        let loader = MapParamsLoader::new([(CONTEXT_ENV_VAR, enc.as_str())]);
        assert!(loader.is_dagster_pipes_process());
        assert!(loader.load_context_params().is_ok());
        let err = loader.load_messages_params().unwrap_err().to_string();
        assert!(err.contains(MESSAGES_ENV_VAR), "{err}");
    }
}
