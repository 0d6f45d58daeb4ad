//! Whole-system benchmarks behind `ringfence bench <area>`.

pub mod api;
pub mod sentry;
pub mod stats;
