//! What a run prints (a table with ratios) and its JSON, in the shape
//! `docs/bench-network.schema.json` documents.

use std::fmt::Write;

use serde_json::{Value, json};

use super::Report;
use super::model::{Better, MetricSpec, PATHS, ProxyMode, Runner, metric_spec, metrics_of};

/// How many times worse `value` is than `base` (>1 slower or less throughput, <1 better);
/// for metrics where higher is better the quotient is turned over, so it reads the same way.
pub fn ratio(m: &MetricSpec, value: Option<f64>, base: Option<f64>) -> Option<f64> {
    let (v, b) = (value?, base?);
    let r = match m.better {
        Better::Lower => v / b,
        Better::Higher => b / v,
    };
    (r.is_finite() && r > 0.0).then_some(r)
}

impl Report {
    /// The Sentry against native on the same path and data path.
    pub fn sentry_ratio(&self, path: &str, metric: &str, mode: ProxyMode) -> Option<f64> {
        let m = metric_spec(metric)?;
        let v = |r| self.value(path, metric, mode, r);
        ratio(m, v(Runner::Sentry), v(Runner::Native))
    }

    /// The user-space proxy against nftables for the same client.
    pub fn userspace_ratio(&self, path: &str, metric: &str, runner: Runner) -> Option<f64> {
        let m = metric_spec(metric)?;
        let v = |mode| self.value(path, metric, mode, runner);
        ratio(m, v(ProxyMode::Userspace), v(ProxyMode::Nftables))
    }
}

/// A number with as many digits as it needs to be read (two significant ones below 10, so
/// that a small ratio never shows as 0).
fn num(v: f64) -> String {
    match v.abs() {
        x if x >= 100.0 => format!("{v:.0}"),
        x if x >= 10.0 => format!("{v:.1}"),
        x if x > 0.0 => {
            let decimals = (1 - x.log10().floor() as i64).clamp(2, 9) as usize;
            format!("{v:.decimals$}")
        }
        _ => format!("{v}"),
    }
}

fn cell(r: &Report, path: &str, metric: &str, mode: ProxyMode, runner: Runner) -> String {
    match r.find(path, metric, mode, runner) {
        Some(m) => match (m.value, &m.error) {
            (Some(v), _) => num(v),
            (None, _) => "FAILED".into(),
        },
        None => "-".into(),
    }
}

fn times(x: Option<f64>) -> String {
    x.map_or("-".into(), |x| format!("{}x", num(x)))
}

/// The table printed at the end of a run.
pub fn table(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Sentry pods and the same program natively in their network namespaces, two nodes (node \
         B in its own namespace, routed), per Service data path. {} run ({:.0} s): {} ms bulk \
         transfer, {} round trips, {} connections per measurement; median of {} round(s). \
         Ratios: how many times worse (slower, or less throughput).\n",
        if r.quick { "Quick" } else { "Full" },
        r.duration_s,
        r.sizes.stream_ms,
        r.sizes.round_trips,
        r.sizes.connects,
        r.sizes.rounds
    );
    s.push_str(
        "| path | metric | unit | native, nftables | sentry, nftables | native, userspace | \
         sentry, userspace | sentry vs native (nftables) | userspace vs nftables (native) | \
         userspace vs nftables (sentry) |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for p in PATHS {
        for m in metrics_of(p) {
            let c = |mode, runner| cell(r, p.id, m.id, mode, runner);
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                p.title,
                m.title,
                m.unit,
                c(ProxyMode::Nftables, Runner::Native),
                c(ProxyMode::Nftables, Runner::Sentry),
                c(ProxyMode::Userspace, Runner::Native),
                c(ProxyMode::Userspace, Runner::Sentry),
                times(r.sentry_ratio(p.id, m.id, ProxyMode::Nftables)),
                times(r.userspace_ratio(p.id, m.id, Runner::Native)),
                times(r.userspace_ratio(p.id, m.id, Runner::Sentry)),
            );
        }
    }
    let failures: Vec<String> = r
        .measurements
        .iter()
        .filter_map(|m| {
            let e = m.error.as_ref()?;
            Some(format!("{} {} {} {}: {e}", m.mode.id(), m.runner.id(), m.path, m.metric))
        })
        .collect();
    if !failures.is_empty() {
        let _ = writeln!(s, "\nFailed:");
        for f in failures.iter().take(12) {
            let _ = writeln!(s, "- {f}");
        }
        if failures.len() > 12 {
            let _ = writeln!(s, "- ... and {} more", failures.len() - 12);
        }
    }
    s
}

pub fn to_json(r: &Report) -> Value {
    let paths: Vec<Value> = PATHS
        .iter()
        .map(|p| {
            let metrics: Vec<&str> = metrics_of(p).map(|m| m.id).collect();
            json!({"id": p.id, "title": p.title, "target": p.target, "metrics": metrics})
        })
        .collect();
    let metrics: Vec<Value> = super::model::METRICS
        .iter()
        .map(|m| json!({"id": m.id, "title": m.title, "unit": m.unit, "better": m.better}))
        .collect();
    let results: Vec<Value> = r
        .measurements
        .iter()
        .map(|m| {
            let vs_native = (m.runner == Runner::Sentry)
                .then(|| r.sentry_ratio(m.path, m.metric, m.mode))
                .flatten();
            let vs_nftables = (m.mode == ProxyMode::Userspace)
                .then(|| r.userspace_ratio(m.path, m.metric, m.runner))
                .flatten();
            json!({
                "path": m.path,
                "metric": m.metric,
                "proxy_mode": m.mode,
                "runner": m.runner,
                "status": if m.value.is_some() { "ok" } else { "failed" },
                "value": m.value,
                "rounds": m.rounds,
                "error": m.error,
                "ratio_to_native": vs_native,
                "ratio_to_nftables": vs_nftables,
            })
        })
        .collect();
    json!({
        "schema_version": 1,
        "tool": "ringfence bench network",
        "started_unix_s": r.started_unix_s,
        "duration_s": r.duration_s,
        "quick": r.quick,
        "sizes": r.sizes,
        "machine": r.machine,
        "proxy_modes": r.modes,
        "paths": paths,
        "metrics": metrics,
        "results": results,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_read_as_times_worse() {
        let tp = metric_spec("throughput_mibs").unwrap();
        let lat = metric_spec("rr_p99_us").unwrap();
        assert_eq!(ratio(tp, Some(50.0), Some(100.0)), Some(2.0));
        assert_eq!(ratio(lat, Some(30.0), Some(10.0)), Some(3.0));
        assert_eq!(ratio(tp, Some(0.0), Some(100.0)), None);
        assert_eq!(ratio(lat, None, Some(1.0)), None);
        assert_eq!(num(1234.5), "1234");
        assert_eq!(num(12.34), "12.3");
        assert_eq!(num(1.234), "1.23");
        assert_eq!(num(0.0123), "0.012");
    }
}
