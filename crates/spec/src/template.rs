//! Placeholders in paths and SQL: `{partition_key}`, `{partition_start}`, `{partition_end}`
//! (and `{partition_start_date}` / `{partition_end_date}`), so one spec serves every partition.

use runner_types::Partition;

/// The placeholders a template may use.
pub const PLACEHOLDERS: &[&str] =
    &["partition_key", "partition_start", "partition_end", "partition_start_date", "partition_end_date"];

/// The placeholders in `text`, or an error naming an unknown one.
pub fn placeholders(text: &str) -> Result<Vec<&str>, String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err(format!("unclosed `{{` in {text:?}"));
        };
        let name = &after[..close];
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "unknown placeholder {{{name}}} in {text:?}; known: {}",
                PLACEHOLDERS.iter().map(|p| format!("{{{p}}}")).collect::<Vec<_>>().join(", ")
            ));
        }
        found.push(name);
        rest = &after[close + 1..];
    }
    Ok(found)
}

/// True when `text` has any placeholder.
pub fn is_templated(text: &str) -> bool {
    placeholders(text).is_ok_and(|p| !p.is_empty())
}

/// Fills the placeholders from a partition. A placeholder with no value is an error that says
/// how to provide one.
pub fn render(text: &str, partition: Option<&Partition>) -> Result<String, String> {
    let names = placeholders(text)?;
    let mut out = text.to_string();
    for name in names {
        let value = match (name, partition) {
            (_, None) => {
                return Err(format!(
                    "{{{name}}} is used in {text:?} but this run has no partition \
                     (pass --partition, or launch it from a partitioned Dagster asset)"
                ));
            }
            ("partition_key", Some(p)) => Some(p.key.to_string()),
            ("partition_start", Some(p)) => p.start.map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string()),
            ("partition_end", Some(p)) => p.end.map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string()),
            ("partition_start_date", Some(p)) => p.start.map(|t| t.format("%Y-%m-%d").to_string()),
            ("partition_end_date", Some(p)) => p.end.map(|t| t.format("%Y-%m-%d").to_string()),
            _ => None,
        };
        let Some(value) = value else {
            return Err(format!(
                "{{{name}}} is used in {text:?} but partition {:?} has no time window",
                partition.map(|p| p.key.as_str()).unwrap_or_default()
            ));
        };
        out = out.replace(&format!("{{{name}}}"), &value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_key_and_window() {
        let p = Partition::from_key("2024-01-02").unwrap();
        assert_eq!(render("raw/{partition_key}/*.csv", Some(&p)).unwrap(), "raw/2024-01-02/*.csv");
        assert_eq!(
            render("ts >= '{partition_start}' AND ts < '{partition_end}'", Some(&p)).unwrap(),
            "ts >= '2024-01-02T00:00:00' AND ts < '2024-01-03T00:00:00'"
        );
        assert!(render("{partition_key}", None).unwrap_err().contains("--partition"));
        assert!(placeholders("{nope}").unwrap_err().contains("unknown placeholder"));
        let s = Partition::from_key("eu").unwrap();
        assert!(render("{partition_start}", Some(&s)).unwrap_err().contains("time window"));
    }
}
