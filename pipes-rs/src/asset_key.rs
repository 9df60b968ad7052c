//! Asset-key strings as Pipes carries them: components joined by `/`, with `\` written `\\`
//! and `/` written `\/` inside a component.

use crate::error::{PipesError, Result};

/// Escapes one key component so it can be joined with `/`.
pub fn escape_component(component: &str) -> String {
    let mut out = String::with_capacity(component.len());
    for c in component.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            c => out.push(c),
        }
    }
    out
}

/// Builds the Pipes string for an asset key given as its path of components.
///
/// ```
/// assert_eq!(dagster_pipes::asset_key::from_path(["prefix", "daily"]), "prefix/daily");
/// assert_eq!(dagster_pipes::asset_key::from_path(["a/b"]), "a\\/b");
/// ```
pub fn from_path<I, S>(components: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    components.into_iter().map(|c| escape_component(c.as_ref())).collect::<Vec<_>>().join("/")
}

/// Splits a Pipes asset-key string into its unescaped components.
///
/// ```
/// let path = dagster_pipes::asset_key::to_path("prefix/other\\/asset").unwrap();
/// assert_eq!(path, vec!["prefix".to_string(), "other/asset".to_string()]);
/// ```
pub fn to_path(key: &str) -> Result<Vec<String>> {
    let mut components = Vec::new();
    let mut current = String::new();
    let mut chars = key.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped @ ('\\' | '/')) => current.push(escaped),
                _ => {
                    return Err(PipesError::InvalidAssetKey {
                        key: key.to_string(),
                        reason: "a backslash must be followed by `\\` or `/`",
                    });
                }
            },
            '/' => components.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    components.push(current);
    Ok(components)
}

/// Checks the rules every reported asset key must follow: non-empty, no empty component, and
/// well-formed escapes.
pub fn validate(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(PipesError::InvalidAssetKey { key: key.to_string(), reason: "it is empty" });
    }
    if to_path(key)?.iter().any(String::is_empty) {
        return Err(PipesError::InvalidAssetKey {
            key: key.to_string(),
            reason: "it has an empty component (a leading, trailing or doubled `/`)",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_awkward_components() {
        let path = ["a/b", "c\\d", "plain", "trailing\\"];
        let key = from_path(path);
        assert_eq!(key, "a\\/b/c\\\\d/plain/trailing\\\\");
        assert_eq!(to_path(&key).unwrap(), path);
    }

    #[test]
    fn rejects_bad_keys() {
        assert!(validate("").is_err());
        assert!(validate("a//b").is_err());
        assert!(validate("a/").is_err());
        assert!(validate("a\\x").is_err());
        assert!(validate("prefix/other\\/asset").is_ok());
    }
}
