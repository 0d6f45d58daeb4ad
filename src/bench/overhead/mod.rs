//! `ringfence bench overhead`: the same workloads, from the same root filesystem, in every
//! runtime this host has (a plain process, runc, runsc, the Sentry, microVMs), measured in one
//! run; a report of medians, spreads and ratios to native, with every sample in JSON, SVG plots
//! and an HTML page.
//!
//! - [`model`]: runtimes, jobs and the metric table; [`workloads`]: what each job runs and
//!   how big; [`rootfs`]: the shared root; [`runtimes`] and [`host`]: the host's runtimes;
//!   [`microvm`]: microVMs through the lane; [`netns`] and [`peer`]: the pod network and the
//!   host peer; [`machine`]: what it ran on.
//! - [`run`]: the order of the work; [`summary`], [`results`], [`report`], [`plots`],
//!   [`html`]: what is written.

mod host;
pub mod html;
pub mod machine;
mod microvm;
pub mod model;
mod netns;
mod peer;
pub mod plots;
pub mod report;
pub mod results;
mod rootfs;
mod run;
mod runtimes;
pub mod summary;
mod svg;
pub mod workloads;

pub use run::run;

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::lane::Transport;
use machine::Machine;
use model::{Job, Metric, Outcome, RuntimeId};
use summary::Summary;
use workloads::Sizes;

pub struct OverheadConfig {
    pub runtimes: Vec<RuntimeId>,
    pub jobs: Vec<Job>,
    pub quick: bool,
    pub out: PathBuf,
    pub density_gib: u64,
    pub transport: Transport,
}

/// What the jobs of a run share.
pub struct Context {
    pub sizes: Sizes,
    pub quick: bool,
    pub density_gib: u64,
    pub peer_port: u16,
    pub sqlite: bool,
    /// Why there is no pod network, when there is none.
    pub net_error: String,
}

/// A runtime as the report lists it.
pub struct RuntimeStatus {
    pub id: RuntimeId,
    pub label: String,
    /// Why it was skipped.
    pub reason: Option<String>,
    /// How it ran, when that matters for reading its numbers.
    pub note: Option<String>,
}

pub struct Cell {
    pub metric: &'static Metric,
    pub runtime: RuntimeId,
    pub outcome: Outcome,
}

pub struct Report {
    pub started_unix_s: u64,
    pub duration_s: f64,
    pub quick: bool,
    pub sizes: Sizes,
    pub density_gib: u64,
    pub machine: Machine,
    pub jobs: Vec<Job>,
    pub runtimes: Vec<RuntimeStatus>,
    pub cells: Vec<Cell>,
    /// Wall time of each job in each runtime; `None`: all jobs of a runtime in one go (the
    /// microVM's lane run).
    pub job_seconds: Vec<(RuntimeId, Option<Job>, f64)>,
}

impl Report {
    pub fn cell(&self, metric: &str, rt: RuntimeId) -> Option<&Cell> {
        self.cells.iter().find(|c| c.metric.id == metric && c.runtime == rt)
    }

    pub fn summary(&self, metric: &str, rt: RuntimeId) -> Option<Summary> {
        match &self.cell(metric, rt)?.outcome {
            Outcome::Ok { samples } => Summary::of(samples),
            _ => None,
        }
    }

    /// The overhead factor of `rt` against native (see [`summary::overhead`]).
    pub fn ratio(&self, metric: &str, rt: RuntimeId) -> Option<f64> {
        let m = model::metric(metric)?;
        let native = self.summary(metric, RuntimeId::Native)?;
        summary::overhead(m, self.summary(metric, rt)?.median, native.median)
    }

    pub fn title(&self, m: &Metric) -> String {
        m.title.replace("N GiB", &format!("{} GiB", self.density_gib))
    }

    pub fn label(&self, rt: RuntimeId) -> &str {
        self.runtimes.iter().find(|s| s.id == rt).map_or(rt.id(), |s| s.label.as_str())
    }
}

/// Idle sandboxes that fit in `gib` GiB at `pss_mib` each.
pub fn density(gib: u64, pss_mib: f64) -> f64 {
    if pss_mib <= 0.0 { 0.0 } else { (gib as f64 * 1024.0 / pss_mib).floor() }
}

/// Writes report.md, results.json (and its schema), the plots and index.html into `out`.
pub fn write(report: &Report, out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let json = results::to_json(report);
    std::fs::write(out.join("results.json"), serde_json::to_vec_pretty(&json)?)?;
    std::fs::write(out.join("results.schema.json"), results::SCHEMA)?;
    let plots = plots::all(report);
    for p in &plots {
        std::fs::write(out.join(&p.file), &p.svg)?;
    }
    std::fs::write(out.join("report.md"), report::markdown(report, &plots))?;
    std::fs::write(out.join("index.html"), html::page(report, &plots))?;
    Ok(())
}
