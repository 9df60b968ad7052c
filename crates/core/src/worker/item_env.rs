//! The environment an item process starts with: the Polars settings a worker chooses for its
//! items (the size of the thread pool, the streaming group-by's hot table), each only where the
//! user has not set it, then the job's declared `[env]` as the worker resolved it; and the
//! check that a user's own setting is one Polars accepts.

use std::process::Command;

use runner_backends::secrets::ResolvedEnv;
use runner_types::HOT_TABLE_VAR;

/// Groups each thread of a streaming group-by keeps in its hot table before it evicts partial
/// aggregates (Polars' own default is 4,096). An item with more keys than that evicts on nearly
/// every row and holds the evicted partials until its end. On the benchmark's reduce this size cut
/// the item's peak 2.85x at 160 k users an item (time within noise) and 3.7x at 80 k (1.14x
/// faster); docs/ARCHITECTURE.md, "The runner", and bench/README.md, "The reduce's layout". The
/// table costs 12 bytes a slot per thread: 3 MiB each at this size.
pub const HOT_TABLE_SIZE: usize = 262_144;

const THREADS_VAR: &str = "POLARS_MAX_THREADS";

/// What a worker gives each of its item processes.
#[derive(Debug, Clone, Default)]
pub struct ItemProcessEnv {
    /// Threads for the item's Polars pool (its own default when `None`).
    pub threads: Option<usize>,
    /// The job's `[env]`, resolved.
    pub declared: ResolvedEnv,
}

impl ItemProcessEnv {
    /// Sets an item process's environment: the pool's threads, the hot table's size unless the
    /// user set one, then the declared variables (which may set the hot table too).
    pub fn apply(&self, cmd: &mut Command) {
        if let Some(n) = self.threads {
            cmd.env(THREADS_VAR, n.to_string());
        }
        if std::env::var_os(HOT_TABLE_VAR).is_none() {
            cmd.env(HOT_TABLE_VAR, HOT_TABLE_SIZE.to_string());
        }
        self.declared.apply(cmd);
    }
}

/// Refuses a `POLARS_HOT_TABLE_SIZE` that Polars would panic on in every group-by of every item
/// (it must be a power of two above 1), naming the setting.
pub fn check_user_env() -> Result<(), String> {
    let Some(value) = std::env::var_os(HOT_TABLE_VAR) else { return Ok(()) };
    let text = value.to_string_lossy();
    match runner_types::refuse_value(HOT_TABLE_VAR, &text) {
        None => Ok(()),
        Some(why) => Err(format!("{HOT_TABLE_VAR}={text:?}: {why}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(cmd: &Command, name: &str) -> Option<String> {
        cmd.get_envs().find(|(k, _)| *k == name).and_then(|(_, v)| v.map(|v| v.to_string_lossy().into_owned()))
    }

    #[test]
    fn items_get_the_threads_and_the_hot_table_unless_the_user_chose() {
        let mut cmd = Command::new("true");
        ItemProcessEnv { threads: Some(3), declared: ResolvedEnv::default() }.apply(&mut cmd);
        assert_eq!(env_of(&cmd, THREADS_VAR).as_deref(), Some("3"));
        let hot = env_of(&cmd, HOT_TABLE_VAR);
        match std::env::var(HOT_TABLE_VAR) {
            // The user's value is inherited, not overwritten.
            Ok(_) => assert_eq!(hot, None),
            Err(_) => assert_eq!(hot, Some(HOT_TABLE_SIZE.to_string())),
        }
        let mut cmd = Command::new("true");
        ItemProcessEnv::default().apply(&mut cmd);
        assert_eq!(env_of(&cmd, THREADS_VAR), None, "Polars' own default");
    }
}
