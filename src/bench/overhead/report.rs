//! `report.md`: the machine, the runtimes, a summary table (median and overhead vs native per
//! workload and runtime), a detailed table per workload, the plots; also what is printed at
//! the end of a run.

use std::fmt::Write;

use super::Report;
use super::model::{METRICS, Outcome};
use super::plots::Plot;
use super::svg::num;

/// One summary cell: `median (ratio x)`, or why there is none.
fn cell(r: &Report, metric: &str, rt: super::model::RuntimeId) -> String {
    match (r.summary(metric, rt), r.cell(metric, rt).map(|c| &c.outcome)) {
        (Some(s), _) => match r.ratio(metric, rt) {
            Some(x) if rt != super::model::RuntimeId::Native => {
                format!("{} ({}x)", num(s.median), num(x))
            }
            _ => num(s.median),
        },
        (None, Some(Outcome::Skipped { .. })) => "skipped".into(),
        (None, Some(Outcome::Failed { .. })) => "FAILED".into(),
        _ => "-".into(),
    }
}

/// The table printed at the end of a run and at the top of the report.
pub fn summary_table(r: &Report) -> String {
    let mut s = String::from("| workload | unit |");
    for rt in &r.runtimes {
        let _ = write!(s, " {} |", rt.label);
    }
    s.push_str("\n|---|---|");
    for _ in &r.runtimes {
        s.push_str("---|");
    }
    s.push('\n');
    for m in METRICS.iter().filter(|m| r.jobs.contains(&m.job)) {
        let _ = write!(s, "| {} | {} |", r.title(m), m.unit.label());
        for rt in &r.runtimes {
            let _ = write!(s, " {} |", cell(r, m.id, rt.id));
        }
        s.push('\n');
    }
    s
}

pub fn header(r: &Report) -> String {
    let m = &r.machine;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Machine: {} ({} cores), {} MiB, Linux {}; KVM: {}.",
        m.cpu_model,
        m.cores,
        m.memory_mib,
        m.kernel,
        m.kvm.describe()
    );
    let _ = writeln!(
        s,
        "Run: {} ({:.0} s): {} starts, {} sandboxes per job ({} for file I/O and CPU), {} s per \
         timed loop, files {} MiB, hashing {} MiB, TCP {} MiB, sqlite {} rows.",
        if r.quick { "quick" } else { "full" },
        r.duration_s,
        r.sizes.starts,
        r.sizes.reps,
        r.sizes.heavy_reps,
        r.sizes.seconds,
        r.sizes.file_mib,
        r.sizes.cpu_mib,
        r.sizes.net_mib,
        r.sizes.sqlite_rows
    );
    s
}

pub fn markdown(r: &Report, plots: &[Plot]) -> String {
    let mut s = String::from("# Isolation overhead: `ringfence bench overhead`\n\n");
    s.push_str(&header(r));
    s.push_str("\n## Runtimes\n\n");
    for rt in &r.runtimes {
        let _ = write!(s, "- **{}**", rt.label);
        match &rt.reason {
            Some(reason) => {
                let _ = write!(s, ": skipped: {reason}");
            }
            None => s.push_str(": measured"),
        }
        if let Some(note) = &rt.note {
            let _ = write!(s, " ({note})");
        }
        s.push('\n');
    }
    s.push_str(
        "\n## Summary\n\nMedians; in parentheses the overhead against native: how many times \
         worse than a plain process (slower, bigger or fewer; below 1 is better than native).\n\n",
    );
    s.push_str(&summary_table(r));
    s.push_str("\n![overhead vs native](overhead_heatmap.svg)\n\n## Workloads\n");
    for m in METRICS.iter().filter(|m| r.jobs.contains(&m.job)) {
        let _ = writeln!(s, "\n### {} ({})\n", r.title(m), m.unit.label());
        s.push_str("| runtime | median | min - max | spread | vs native | samples |\n");
        s.push_str("|---|---|---|---|---|---|\n");
        for rt in &r.runtimes {
            let Some(c) = r.cell(m.id, rt.id) else { continue };
            match (&c.outcome, r.summary(m.id, rt.id)) {
                (Outcome::Ok { samples }, Some(sum)) => {
                    let ratio = r.ratio(m.id, rt.id).map_or("-".into(), |x| format!("{}x", num(x)));
                    let _ = writeln!(
                        s,
                        "| {} | {} | {} - {} | {:.0}% | {ratio} | {} |",
                        rt.label,
                        num(sum.median),
                        num(sum.min),
                        num(sum.max),
                        sum.spread() * 100.0,
                        samples.len()
                    );
                }
                (Outcome::Skipped { reason }, _) => {
                    let _ =
                        writeln!(s, "| {} | skipped: {} | | | | |", rt.label, cell_text(reason));
                }
                (Outcome::Failed { reason }, _) => {
                    let _ = writeln!(s, "| {} | FAILED: {} | | | | |", rt.label, cell_text(reason));
                }
                (Outcome::Ok { .. }, None) => {}
            }
        }
        let _ = writeln!(s, "\n![{}]({}.svg)", r.title(m), m.id);
    }
    s.push_str("\n## Plots\n\n");
    for p in plots.iter().filter(|p| !METRICS.iter().any(|m| format!("{}.svg", m.id) == p.file)) {
        let _ = writeln!(s, "![{}]({})\n", p.title, p.file);
    }
    s.push_str(
        "## Reading it\n\nEvery sandbox runs the same static programs from one root filesystem. \
         Medians are over fresh sandboxes (one per sample); spread is (max - min) / median. \
         Native is a plain process; its ratios are 1 by definition. Every sample, the machine \
         and the tool versions are in results.json (schema: results.schema.json).\n",
    );
    s
}

/// A reason as one table cell.
fn cell_text(reason: &str) -> String {
    reason.replace('|', "/").replace('\n', " ")
}
