//! A job's declared item environment, resolved by the worker that runs its items: plain values
//! as they are, secrets from AWS Secrets Manager and parameters from Parameter Store with the
//! worker's own credentials (its instance profile on EC2). The values live in memory and in the
//! environment of item processes only: [`ResolvedEnv`] never prints one, and the errors name
//! the variable and its reference, never a value.

use std::process::Command;

use runner_types::{EnvSource, ItemEnv};
use thiserror::Error;

use crate::aws::AwsClients;

/// A variable that could not be resolved: the worker stops and says which, at once when no
/// retry fixes it (a missing secret, a refused read, a value that lacks the key), after asking
/// again for a while when it is `transient` (no answer, throttling).
#[derive(Debug, Error)]
#[error("env {name}: reading {source_ref}: {detail}")]
pub struct SecretError {
    /// The variable.
    pub name: String,
    /// Its reference, as declared.
    pub source_ref: String,
    /// What went wrong (AWS's error code and message, or what the value lacked).
    pub detail: String,
    /// The service did not answer, or throttled the call: asking again may work.
    pub transient: bool,
}

/// Whether a failed call may work when asked again: no answer (a timeout, a connection that
/// failed, a response that could not be read), a server error, or throttling.
fn passing<E: aws_sdk_ssm::error::ProvideErrorMetadata>(e: &aws_sdk_ssm::error::SdkError<E>) -> bool {
    use aws_sdk_ssm::error::SdkError;
    match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        _ => {
            e.raw_response().is_some_and(|r| r.status().is_server_error())
                || e.as_service_error().and_then(|s| s.code()).is_some_and(|c| c.contains("Throttl"))
        }
    }
}

/// The resolved variables. `Debug` shows their names only.
#[derive(Clone, Default)]
pub struct ResolvedEnv(Vec<(String, String)>);

impl std::fmt::Debug for ResolvedEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.iter().map(|(name, _)| name)).finish()
    }
}

impl ResolvedEnv {
    /// Sets every variable on `cmd` (an item process).
    pub fn apply(&self, cmd: &mut Command) {
        for (name, value) in &self.0 {
            cmd.env(name, value);
        }
    }

    /// The variables' names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(n, _)| n.as_str())
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Resolves every variable of `env`. AWS clients are made only when a secret or parameter is
/// declared, so a job with plain values (or none) never loads an AWS configuration.
pub async fn resolve(env: &ItemEnv, aws: &AwsClients) -> Result<ResolvedEnv, SecretError> {
    let mut out = Vec::with_capacity(env.len());
    for (name, source) in env {
        let fail = |(detail, transient): (String, bool)| SecretError {
            name: name.clone(),
            source_ref: source.to_string(),
            detail,
            transient,
        };
        let value = match source {
            EnvSource::Value(v) => v.clone(),
            EnvSource::Secret { secret, key } => {
                let whole = secret_string(aws, secret).await.map_err(fail)?;
                match key {
                    None => whole,
                    Some(k) => json_field(&whole, k).map_err(|d| fail((d, false)))?,
                }
            }
            EnvSource::Parameter { parameter } => parameter_value(aws, parameter).await.map_err(fail)?,
        };
        // A value read from a secret is checked here (a plain one already was, with the spec).
        if let Some(why) = runner_types::refuse_value(name, &value) {
            return Err(fail((why, false)));
        }
        out.push((name.clone(), value));
    }
    Ok(ResolvedEnv(out))
}

async fn secret_string(aws: &AwsClients, id: &str) -> Result<String, (String, bool)> {
    use aws_sdk_secretsmanager::error::DisplayErrorContext;
    let client = aws_sdk_secretsmanager::Client::new(aws.sdk().await);
    let sent = client.get_secret_value().secret_id(id).send().await;
    let out = sent.map_err(|e| (DisplayErrorContext(&e).to_string(), passing(&e)))?;
    match out.secret_string() {
        Some(s) => Ok(s.to_string()),
        None => {
            Err(("the secret has no SecretString (a binary secret can't be an environment variable)".into(), false))
        }
    }
}

async fn parameter_value(aws: &AwsClients, name: &str) -> Result<String, (String, bool)> {
    use aws_sdk_ssm::error::DisplayErrorContext;
    let client = aws_sdk_ssm::Client::new(aws.sdk().await);
    let sent = client.get_parameter().name(name).with_decryption(true).send().await;
    let out = sent.map_err(|e| (DisplayErrorContext(&e).to_string(), passing(&e)))?;
    out.parameter()
        .and_then(|p| p.value())
        .map(str::to_string)
        .ok_or_else(|| ("the parameter has no value".into(), false))
}

/// One field of a JSON object secret, as text: a string field as it is, any other value as its
/// JSON (a number, `true`).
fn json_field(whole: &str, key: &str) -> Result<String, String> {
    let value: serde_json::Value = serde_json::from_str(whole)
        .map_err(|_| format!("the secret is not a JSON object, so it has no key {key:?}"))?;
    let Some(object) = value.as_object() else {
        return Err(format!("the secret is not a JSON object, so it has no key {key:?}"));
    };
    match object.get(key) {
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(other) => Ok(other.to_string()),
        None => {
            let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
            keys.sort_unstable();
            Err(format!("the secret has no key {key:?} (it has: {})", keys.join(", ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_of_a_json_secret() {
        assert_eq!(json_field(r#"{"user":"u","password":"p w"}"#, "password").unwrap(), "p w");
        assert_eq!(json_field(r#"{"port":5432}"#, "port").unwrap(), "5432");
        let missing = json_field(r#"{"user":"u","password":"hunter2"}"#, "pass").unwrap_err();
        assert_eq!(missing, r#"the secret has no key "pass" (it has: password, user)"#);
        assert!(!missing.contains("hunter2"), "an error names keys, never values");
        assert!(json_field("hunter2", "k").unwrap_err().contains("not a JSON object"));
    }

    #[test]
    fn debug_shows_names_only() {
        let env = ResolvedEnv(vec![("DB_PASSWORD".into(), "hunter2".into())]);
        assert_eq!(format!("{env:?}"), r#"["DB_PASSWORD"]"#);
    }

    #[tokio::test]
    async fn plain_values_need_no_aws() {
        let mut env = ItemEnv::new();
        env.insert("A".into(), EnvSource::Value("1".into()));
        // No AWS configuration is loaded: `AwsClients::new()` loads lazily and is never asked.
        let resolved = resolve(&env, &AwsClients::new()).await.unwrap();
        let mut cmd = Command::new("true");
        resolved.apply(&mut cmd);
        let set: Vec<_> = cmd.get_envs().map(|(k, v)| (k.to_owned(), v.map(|v| v.to_owned()))).collect();
        assert_eq!(set, vec![("A".into(), Some("1".into()))]);
    }
}
