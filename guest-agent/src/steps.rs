//! How long each step of a request took in the guest, for the host's timings: where a pod's
//! start goes on hosts whose KVM emulates guest kernel code.

use std::time::{Duration, Instant};

use crate::proto;

/// Steps ended so far, each timed from the end of the one before.
#[derive(Debug, Clone)]
pub struct Steps {
    last: Instant,
    pub done: Vec<(&'static str, Duration)>,
}

impl Steps {
    /// The first step begins now.
    pub fn start() -> Steps {
        Steps { last: Instant::now(), done: Vec::new() }
    }

    /// Ends step `name` (begun when the last one ended).
    pub fn lap(&mut self, name: &'static str) {
        let now = Instant::now();
        self.done.push((name, now - std::mem::replace(&mut self.last, now)));
    }
}

/// Step durations as the protocol carries them.
pub fn to_proto(steps: &[(&'static str, Duration)]) -> Vec<proto::StepTime> {
    steps
        .iter()
        .map(|(step, d)| proto::StepTime { step: (*step).into(), micros: d.as_micros() as u64 })
        .collect()
}
