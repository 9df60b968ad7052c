//! Context loaders: turn the decoded context params into [`ContextData`] from a file, inline
//! data, or an S3 object.

use std::path::PathBuf;

use serde_json::Value;

use crate::bootstrap::Params;
use crate::context::ContextData;
use crate::error::{PipesError, Result};

/// Where the context is, as the params say.
#[derive(Debug, Clone, PartialEq)]
pub enum ContextSource {
    /// A JSON file (the temp-file injector).
    Path(PathBuf),
    /// Inline JSON (the env injector).
    Data(Value),
    /// An S3 object (the S3 injector).
    S3 {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
    },
}

impl ContextSource {
    /// Interprets context params. `path` wins over `data`, as in the reference.
    pub fn from_params(params: &Params) -> Result<Self> {
        let string = |key: &'static str| -> Result<Option<String>> {
            match params.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(PipesError::InvalidParam {
                    what: "context",
                    key,
                    detail: format!("expected a string, got {}", crate::bootstrap::json_kind(other)),
                }),
            }
        };
        if let Some(path) = string("path")? {
            return Ok(Self::Path(path.into()));
        }
        if let Some(data) = params.get("data").filter(|v| !v.is_null()) {
            return Ok(Self::Data(data.clone()));
        }
        if let (Some(bucket), Some(key)) = (string("bucket")?, string("key")?) {
            return Ok(Self::S3 { bucket, key });
        }
        Err(PipesError::UnknownContextParams { keys: params.keys().cloned().collect() })
    }

    /// Loads the context.
    pub fn load(&self, s3: &crate::S3Options) -> Result<ContextData> {
        match self {
            Self::Path(path) => {
                let bytes =
                    std::fs::read(path).map_err(|source| PipesError::ContextFile { path: path.clone(), source })?;
                ContextData::from_json(&bytes)
            }
            Self::Data(value) => {
                let data: ContextData = serde_json::from_value(value.clone()).map_err(PipesError::ContextData)?;
                if let Some(w) = &data.partition_time_window {
                    w.parse()?;
                }
                Ok(data)
            }
            Self::S3 { bucket, key } => load_s3(bucket, key, s3),
        }
    }
}

#[cfg(feature = "s3")]
fn load_s3(bucket: &str, key: &str, options: &crate::S3Options) -> Result<ContextData> {
    let bytes = crate::s3::get_object(options, bucket, key)?;
    ContextData::from_json(&bytes)
}

#[cfg(not(feature = "s3"))]
fn load_s3(_bucket: &str, _key: &str, _options: &crate::S3Options) -> Result<ContextData> {
    Err(PipesError::S3NotEnabled { what: "the context" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(v: Value) -> Params {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn path_wins_over_data() {
        let src = ContextSource::from_params(&params(json!({"path": "/x", "data": {"run_id": "r"}})));
        assert_eq!(src.unwrap(), ContextSource::Path("/x".into()));
    }

    #[test]
    fn unknown_params_name_the_keys() {
        let err = ContextSource::from_params(&params(json!({"url": "x", "zzz": 1}))).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("\"url\"") && text.contains("\"zzz\""), "{text}");
    }

    #[test]
    fn s3_shape() {
        let src = ContextSource::from_params(&params(json!({"bucket": "b", "key": "k/context.json"})));
        assert_eq!(src.unwrap(), ContextSource::S3 { bucket: "b".into(), key: "k/context.json".into() });
    }
}
