//! The order of a run: the shared root, the pod network and the peer set up once; each job
//! in every host runtime in turn, repetitions interleaved; microVMs in one lane run at the end.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Context as _;

use super::machine::Machine;
use super::model::{self, Job, METRICS, Outcome, RuntimeId};
use super::summary::Summary;
use super::workloads::Sizes;
use super::{Cell, Context, OverheadConfig, Report, RuntimeStatus};
use super::{host, microvm, netns, peer, rootfs, runtimes};
use crate::lane::Transport;

/// One job in one runtime: its wall time and every metric's outcome.
struct JobRun {
    runtime: RuntimeId,
    seconds: f64,
    outcomes: Vec<(&'static str, Outcome)>,
}

fn label(rt: RuntimeId, transport: Transport) -> (String, Option<String>) {
    match rt {
        RuntimeId::Runsc => (
            "runsc (ptrace)".into(),
            Some(
                "Debian's 2022-12 build, ptrace platform; network through the pod's namespace \
                 (--network=host inside it): its own network stack refuses to start on kernels \
                 from 6.11 on (gVisor issue 10704)"
                    .into(),
            ),
        ),
        RuntimeId::Microvm if transport == Transport::Nested => (
            "microvm (nested lane)".into(),
            Some(
                "inside the nested-SVM lane: a QEMU TCG VM with emulated SVM runs the microVM, \
                 so every instruction is emulated; its numbers show the lane, not the VMM, and \
                 are not comparable with the host's runtimes (files capped at 64 MiB in guest \
                 memory)"
                    .into(),
            ),
        ),
        RuntimeId::Microvm => (
            "microvm".into(),
            Some("this host's KVM (files capped at 64 MiB in guest memory)".into()),
        ),
        _ => (rt.id().into(), None),
    }
}

pub fn run(cfg: &OverheadConfig) -> anyhow::Result<Report> {
    let started = Instant::now();
    let started_unix_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let sizes = if cfg.quick { Sizes::quick() } else { Sizes::full() };
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let rootfs = dir.path().join("bundle/rootfs");
    let volume = dir.path().join("volume");
    std::fs::create_dir_all(&volume)?;
    let sqlite = rootfs::build(&rootfs)?;
    let (net, net_error) = match netns::PodNetwork::create() {
        Ok(n) => (Some(n), String::new()),
        Err(e) => (None, format!("{e:#}")),
    };
    let peer = peer::Peer::start()?;
    let host = runtimes::Host {
        dir: dir.path().to_owned(),
        rootfs: rootfs.clone(),
        volume,
        ringfence: std::env::current_exe()?,
        net,
    };
    let ctx = Context {
        sizes: sizes.clone(),
        quick: cfg.quick,
        density_gib: cfg.density_gib,
        peer_port: peer.port,
        sqlite,
        net_error,
    };
    let mut runtimes = Vec::new();
    for &rt in &cfg.runtimes {
        let (label, note) = label(rt, cfg.transport);
        let reason = match rt {
            RuntimeId::Microvm => microvm::unavailable(cfg.transport),
            _ => runtimes::unavailable(rt),
        };
        if let Some(reason) = &reason {
            eprintln!("overhead: {label}: skipped: {reason}");
        }
        runtimes.push(RuntimeStatus { id: rt, label, reason, note });
    }
    let mut cells = Vec::new();
    let mut job_seconds = Vec::new();
    for s in runtimes.iter().filter(|s| s.reason.is_some()) {
        for m in METRICS.iter().filter(|m| cfg.jobs.contains(&m.job)) {
            let reason = s.reason.clone().unwrap_or_default();
            cells.push(Cell { metric: m, runtime: s.id, outcome: Outcome::Skipped { reason } });
        }
    }
    let measured: Vec<&RuntimeStatus> = runtimes.iter().filter(|s| s.reason.is_none()).collect();
    let on_host: Vec<&RuntimeStatus> =
        measured.iter().copied().filter(|s| s.id != RuntimeId::Microvm).collect();
    for (i, &job) in cfg.jobs.iter().enumerate() {
        eprintln!("overhead: [{}/{}] {job:?} ...", i + 1, cfg.jobs.len());
        for JobRun { runtime: rt, seconds, outcomes } in interleaved(&host, &ctx, &on_host, job) {
            for (m, o) in outcomes {
                progress_line(on_host.iter().find(|s| s.id == rt).map_or("", |s| &s.label), m, &o);
                if let Some(metric) = model::metric(m) {
                    cells.push(Cell { metric, runtime: rt, outcome: o });
                }
            }
            job_seconds.push((rt, Some(job), seconds));
        }
    }
    if let Some(vm) = measured.iter().find(|s| s.id == RuntimeId::Microvm) {
        eprintln!("overhead: {}: every job in one lane run ...", vm.label);
        let t = Instant::now();
        for (m, o) in microvm::run(&rootfs, &ctx, &cfg.jobs, cfg.transport) {
            progress_line(&vm.label, m, &o);
            if let Some(metric) = model::metric(m) {
                cells.push(Cell { metric, runtime: vm.id, outcome: o });
            }
        }
        job_seconds.push((vm.id, None, t.elapsed().as_secs_f64()));
    }
    drop(host);
    Ok(Report {
        started_unix_s,
        duration_s: started.elapsed().as_secs_f64(),
        quick: cfg.quick,
        sizes,
        density_gib: cfg.density_gib,
        machine: Machine::detect(),
        jobs: cfg.jobs.clone(),
        runtimes,
        cells,
        job_seconds,
    })
}

/// `job` in every runtime of `rts`, repetitions interleaved (repetition 1 in each runtime,
/// then 2...), so that a change in the host's load (other work, the page cache, the disk's
/// write-back) falls on every runtime alike. Per runtime: its wall time and every metric's
/// outcome; a runtime whose repetition fails does no more of them and fails the job.
fn interleaved(
    host: &runtimes::Host,
    ctx: &Context,
    rts: &[&RuntimeStatus],
    job: Job,
) -> Vec<JobRun> {
    let ids: Vec<&'static str> = METRICS.iter().filter(|m| m.job == job).map(|m| m.id).collect();
    let mut samples: BTreeMap<(RuntimeId, &'static str), Vec<f64>> = BTreeMap::new();
    let mut failed: BTreeMap<RuntimeId, Outcome> = BTreeMap::new();
    let mut seconds: BTreeMap<RuntimeId, f64> = BTreeMap::new();
    for s in rts {
        if let Some(reason) = host::skip(host, ctx, s.id, job) {
            failed.insert(s.id, Outcome::Skipped { reason });
        }
    }
    for _ in 0..ctx.sizes.reps_of(job) {
        for s in rts {
            if failed.contains_key(&s.id) {
                continue;
            }
            let t = Instant::now();
            match host::run_once(host, ctx, s.id, job) {
                Ok(values) => {
                    for (id, v) in values {
                        if let Some(known) = ids.iter().find(|k| **k == id) {
                            samples.entry((s.id, known)).or_default().push(v);
                        }
                    }
                }
                Err(reason) => {
                    failed.insert(s.id, Outcome::Failed { reason });
                }
            }
            *seconds.entry(s.id).or_default() += t.elapsed().as_secs_f64();
        }
    }
    rts.iter()
        .map(|s| {
            let outcomes = ids
                .iter()
                .map(|id| {
                    let o = match (failed.get(&s.id), samples.remove(&(s.id, *id))) {
                        (Some(o), _) => o.clone(),
                        (None, Some(samples)) => Outcome::Ok { samples },
                        (None, None) => {
                            Outcome::Failed { reason: format!("the workload reported no {id}") }
                        }
                    };
                    (*id, o)
                })
                .collect();
            JobRun { runtime: s.id, seconds: seconds.get(&s.id).copied().unwrap_or(0.0), outcomes }
        })
        .collect()
}

fn progress_line(label: &str, metric: &str, o: &Outcome) {
    match o {
        Outcome::Ok { samples } => {
            let median = Summary::of(samples).map_or(f64::NAN, |s| s.median);
            eprintln!("overhead:     {label} {metric}: {median:.4} ({} samples)", samples.len());
        }
        Outcome::Skipped { reason } => {
            eprintln!("overhead:     {label} {metric}: skipped: {reason}")
        }
        Outcome::Failed { reason } => eprintln!("overhead:     {label} {metric}: FAILED: {reason}"),
    }
}
