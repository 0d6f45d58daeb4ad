//! `ringfence bench network`: TCP throughput and request/response latency pod -> pod (same
//! node, other node) and pod -> Service (endpoint on either node), and Service connection
//! setup against 100 endpoints, through the nftables data path and the user-space proxy in
//! the same run, each next to the same program run natively over the same path.
//!
//! - [`model`]: proxy modes, runners, the paths and metrics (one declarative table each).
//! - [`topology`]: node B's namespace and link, the 100 endpoint addresses, address ranges.
//! - [`cluster`]: a two-node cluster per proxy mode; [`objects`]: its pods and Services.
//! - [`workload`]: the measuring program, its plans and results, native runs.
//! - [`run`]: the order of the work; [`report`]: the table and the JSON.

mod cluster;
pub mod model;
mod objects;
pub mod report;
mod run;
mod topology;
mod workload;

pub use run::run;

use model::{Measurement, ProxyMode, Runner, Sizes};

use crate::bench::overhead::machine::Machine;

pub struct NetworkConfig {
    pub modes: Vec<ProxyMode>,
    pub quick: bool,
}

pub struct Report {
    pub started_unix_s: u64,
    pub duration_s: f64,
    pub quick: bool,
    pub sizes: Sizes,
    pub modes: Vec<ProxyMode>,
    pub machine: Machine,
    pub measurements: Vec<Measurement>,
}

impl Report {
    pub fn value(&self, path: &str, metric: &str, mode: ProxyMode, runner: Runner) -> Option<f64> {
        self.find(path, metric, mode, runner)?.value
    }

    pub fn find(
        &self,
        path: &str,
        metric: &str,
        mode: ProxyMode,
        runner: Runner,
    ) -> Option<&Measurement> {
        self.measurements
            .iter()
            .find(|m| m.path == path && m.metric == metric && m.mode == mode && m.runner == runner)
    }
}
