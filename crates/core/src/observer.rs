//! What the orchestrator tells the outside world as a run progresses. The binary's terminal
//! progress implements it (and its logs reach Dagster through the Pipes tracing layer).

/// Run events.
pub trait Observer: Send + Sync {
    /// A step starts: `index` is 1-based.
    fn step_started(&self, _step: &str, _index: usize, _steps: usize, _items: usize, _items_already_committed: usize) {}
    /// Progress within a step.
    fn progress(&self, _step: &str, _index: usize, _steps: usize, _done: usize, _total: usize) {}
    /// An attempt failed (it may be retried).
    fn item_failed(&self, _step: &str, _label: &str, _attempt: u32, _error: &str, _will_retry: bool) {}
    /// A worker handed an item back.
    fn item_interrupted(&self, _step: &str, _label: &str, _reason: &str) {}
    /// A step finished.
    fn step_finished(&self, _step: &str, _index: usize, _steps: usize, _seconds: f64) {}
}
