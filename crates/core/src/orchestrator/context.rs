//! What a step is run with: the run's shared context and the queues a step talks to. The step
//! driver, its wait and the tables' commit all read these; none of them owns them.

use std::sync::Arc;
use std::time::Instant;

use runner_backends::queue::Queue;
use runner_spec::JobSpec;
use runner_types::Partition;

use super::{Backends, LiveResources, RunOptions};
use crate::observer::Observer;

/// What every step of a run shares.
pub(crate) struct StepContext<'a> {
    pub spec: &'a JobSpec,
    pub spec_uri: &'a runner_types::Location,
    pub options: &'a RunOptions,
    pub backends: &'a Backends,
    pub observer: &'a dyn Observer,
    pub live: &'a LiveResources,
    /// 1-based position of the step in the run.
    pub index: usize,
    /// Steps in the run.
    pub steps: usize,
    pub deadline: Option<Instant>,
}

/// The queues a step talks to.
pub(crate) struct StepQueues<'a> {
    pub work: &'a Arc<dyn Queue>,
    pub callbacks: &'a dyn Queue,
    pub dlq: &'a dyn Queue,
}

impl StepContext<'_> {
    pub(super) fn partitions(&self) -> Vec<Option<Partition>> {
        let p = &self.options.partitions;
        if p.is_empty() { vec![None] } else { p.iter().cloned().map(Some).collect() }
    }
}
