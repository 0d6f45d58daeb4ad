//! Whole-system benchmarks behind `ringfence bench <area>`.

pub mod agent_start;
pub mod api;
pub mod lane;
pub mod network;
pub mod overhead;
pub mod pods;
pub mod process;
pub mod scheduler;
pub mod sentry;
pub mod snapshot;
pub mod stats;
pub mod virtio;
pub mod vmm;
