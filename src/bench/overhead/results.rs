//! `results.json`: every sample and the machine, in the shape `docs/bench-overhead.schema.json`
//! documents (written beside it as `results.schema.json`).

use serde_json::{Value, json};

use super::Report;
use super::model::{METRICS, Outcome};

/// The JSON Schema of `results.json`.
pub const SCHEMA: &str = include_str!("../../../docs/bench-overhead.schema.json");

pub fn to_json(r: &Report) -> Value {
    let runtimes: Vec<Value> = r
        .runtimes
        .iter()
        .map(|s| {
            json!({"id": s.id, "label": s.label, "available": s.reason.is_none(),
                   "reason": s.reason, "note": s.note})
        })
        .collect();
    let workloads: Vec<Value> = METRICS
        .iter()
        .filter(|m| r.jobs.contains(&m.job))
        .map(|m| {
            json!({"id": m.id, "job": m.job, "title": r.title(m), "unit": m.unit, "better": m.better})
        })
        .collect();
    let results: Vec<Value> = r
        .cells
        .iter()
        .map(|c| {
            let summary = r.summary(c.metric.id, c.runtime);
            let (samples, reason) = match &c.outcome {
                Outcome::Ok { samples } => (samples.clone(), None),
                Outcome::Skipped { reason } | Outcome::Failed { reason } => {
                    (Vec::new(), Some(reason.clone()))
                }
            };
            let status = match c.outcome {
                Outcome::Ok { .. } => "ok",
                Outcome::Skipped { .. } => "skipped",
                Outcome::Failed { .. } => "failed",
            };
            json!({
                "workload": c.metric.id,
                "runtime": c.runtime,
                "status": status,
                "reason": reason,
                "samples": samples,
                "median": summary.map(|s| s.median),
                "min": summary.map(|s| s.min),
                "max": summary.map(|s| s.max),
                "spread": summary.map(|s| s.spread()),
                "ratio_to_native": r.ratio(c.metric.id, c.runtime),
            })
        })
        .collect();
    let job_seconds: Vec<Value> = r
        .job_seconds
        .iter()
        .map(|(rt, job, s)| json!({"runtime": rt, "job": job, "seconds": s}))
        .collect();
    let s = &r.sizes;
    json!({
        "schema_version": 1,
        "tool": "ringfence bench overhead",
        "started_unix_s": r.started_unix_s,
        "duration_s": r.duration_s,
        "quick": r.quick,
        "density_gib": r.density_gib,
        "sizes": {
            "reps": s.reps, "heavy_reps": s.heavy_reps, "starts": s.starts, "seconds": s.seconds,
            "file_mib": s.file_mib, "cpu_mib": s.cpu_mib, "net_mib": s.net_mib,
            "sqlite_rows": s.sqlite_rows, "settle_s": s.settle.as_secs_f64(),
        },
        "machine": r.machine,
        "runtimes": runtimes,
        "workloads": workloads,
        "results": results,
        "job_seconds": job_seconds,
    })
}
