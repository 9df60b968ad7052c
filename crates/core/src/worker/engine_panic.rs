//! A panic inside Polars while an item runs: what it said and where. Polars panics on cases it
//! does not handle (an operation on a dtype it lacks, say), and the same item meets the same case
//! on every attempt, so the item's process catches the panic and fails the item for good
//! ([`super::exec`]). A panic in one of Polars' threads reaches the item's thread with its
//! message alone, so a hook records where each panic happened, by its message, before the usual
//! report on stderr.

use std::any::Any;
use std::sync::{Mutex, Once};

/// The latest panics of this process: their message and where they happened
/// (`crate-version/src/file.rs:line:column`), newest last.
static RECENT: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// Panics remembered; Polars may catch a few of its own before the one that ends an item.
const REMEMBERED: usize = 8;

/// Installs, once per process, the hook that records where each panic happens; it then does
/// what the hook before it did (the default prints the panic to stderr, the item's log).
pub(super) fn record_locations() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(at) = info.location() {
                let message = message(info.payload()).unwrap_or_default();
                let at = format!("{}:{}:{}", crate_relative(at.file()), at.line(), at.column());
                let mut recent = RECENT.lock().unwrap_or_else(|p| p.into_inner());
                if recent.len() == REMEMBERED {
                    recent.remove(0);
                }
                recent.push((message, at));
            }
            previous(info);
        }));
    });
}

/// Where the latest panic that said `message` happened, forgotten once told.
pub(super) fn location_of(message: &str) -> Option<String> {
    let mut recent = RECENT.lock().unwrap_or_else(|p| p.into_inner());
    let i = recent.iter().rposition(|(m, _)| m == message)?;
    Some(recent.remove(i).1)
}

/// What a panic said (`panic!` carries a `&str` or a `String`).
pub(super) fn message(payload: &(dyn Any + Send)) -> Option<String> {
    match (payload.downcast_ref::<&str>(), payload.downcast_ref::<String>()) {
        (Some(s), _) => Some((*s).to_string()),
        (_, Some(s)) => Some(s.clone()),
        _ => None,
    }
}

/// A source path from the crate's own directory on (`polars-core-0.55.2/src/…`): the path in
/// the build machine's cargo registry says nothing more.
fn crate_relative(file: &str) -> &str {
    match file.split_once("/registry/src/") {
        Some((_, rest)) => rest.split_once('/').map_or(rest, |(_, path)| path),
        None => file,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registry_path_is_shown_from_the_crate_on() {
        assert_eq!(
            crate_relative("/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/polars-core-0.55.2/src/a.rs"),
            "polars-core-0.55.2/src/a.rs"
        );
        assert_eq!(crate_relative("crates/core/src/worker/exec.rs"), "crates/core/src/worker/exec.rs");
    }

    #[test]
    fn a_panic_says_its_message_whatever_its_payload() {
        assert_eq!(message(&"not implemented for dtype Int128").as_deref(), Some("not implemented for dtype Int128"));
        assert_eq!(message(&String::from("index out of bounds")).as_deref(), Some("index out of bounds"));
        assert_eq!(message(&42_u8), None);
    }

    #[test]
    fn a_panic_is_placed_by_its_message_once() {
        record_locations();
        let line = line!() + 1;
        let caught: std::thread::Result<()> = std::panic::catch_unwind(|| panic!("engine_panic test: {}", 7));
        let said = message(&*caught.unwrap_err()).unwrap();
        assert_eq!(said, "engine_panic test: 7");
        let at = location_of(&said).unwrap();
        assert!(at.starts_with(&format!("{}:{line}:", file!())), "{at}");
        assert_eq!(location_of(&said), None, "told once");
    }
}
