//! Whole-system benchmarks behind `ringfence bench <area>`.

pub mod api;
pub mod scheduler;
pub mod sentry;
pub mod stats;
