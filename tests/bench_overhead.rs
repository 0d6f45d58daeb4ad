//! `ringfence bench overhead --quick` with native, runc, the Sentry (and runsc where it is
//! installed), checked as a reader of the report would: every workload has a value or a
//! reason in every runtime, results.json validates against the schema written beside it, the
//! plots are well-formed SVG, and the medians and ratios follow from the samples.

#[path = "common/bench.rs"]
mod bench;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// The quick run takes ~2 minutes here; past this it is stuck.
const WATCHDOG: Duration = Duration::from_secs(420);

fn installed(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs the benchmark into `out`; its table.
fn run_bench(out: &Path, runtimes: &str) -> String {
    let out_arg = out.to_str().expect("a UTF-8 path");
    let args = ["overhead", "--quick", "--runtimes", runtimes, "--out", out_arg];
    bench::run(&args, &out.with_extension("log"), WATCHDOG)
}

fn median(samples: &[f64]) -> f64 {
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

#[test]
fn quick_report_is_complete_and_consistent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("report");
    let mut runtimes = vec!["native", "runc", "sentry"];
    if installed("runsc") {
        runtimes.push("runsc");
    }
    let stdout = run_bench(&out, &runtimes.join(","));
    assert!(stdout.contains("| workload | unit |"), "no summary table printed:\n{stdout}");

    let json: Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    let schema: Value =
        serde_json::from_slice(&std::fs::read(out.join("results.schema.json")).unwrap()).unwrap();
    let errors = bench::validate(&json, &schema, "$");
    assert!(errors.is_empty(), "results.json does not fit its schema:\n{}", errors.join("\n"));
    let documented: Value =
        serde_json::from_str(include_str!("../docs/bench-overhead.schema.json")).unwrap();
    assert_eq!(schema, documented, "the schema written is the documented one");

    let workloads: Vec<&Value> = json["workloads"].as_array().unwrap().iter().collect();
    let results = json["results"].as_array().unwrap();
    assert!(workloads.len() >= 20, "{} workloads", workloads.len());
    let find = |w: &str, rt: &str| {
        let hits: Vec<&Value> =
            results.iter().filter(|r| r["workload"] == w && r["runtime"] == rt).collect();
        assert_eq!(hits.len(), 1, "{w} in {rt}: {} results", hits.len());
        hits[0]
    };
    for w in &workloads {
        let id = w["id"].as_str().unwrap();
        for rt in &runtimes {
            let r = find(id, rt);
            let samples: Vec<f64> =
                r["samples"].as_array().unwrap().iter().map(|s| s.as_f64().unwrap()).collect();
            if r["status"] == "ok" {
                // A value, and the numbers shown follow from the samples.
                assert!(!samples.is_empty() && samples.iter().all(|s| s.is_finite()), "{r}");
                let m = r["median"].as_f64().unwrap();
                assert!(bench::close(m, median(&samples)), "{id} {rt}: median {m} vs {samples:?}");
                let lo = samples.iter().copied().fold(f64::INFINITY, f64::min);
                assert!(bench::close(r["min"].as_f64().unwrap(), lo), "{r}");
                let native = find(id, "native");
                match (r["ratio_to_native"].as_f64(), native["median"].as_f64()) {
                    (Some(ratio), Some(n)) => {
                        let expect = if w["better"] == "lower" { m / n } else { n / m };
                        assert!(
                            bench::close(ratio, expect),
                            "{id} {rt}: ratio {ratio}, expected {expect}"
                        );
                    }
                    (None, Some(n)) => {
                        assert!(!(m / n).is_finite() || m == 0.0, "{id} {rt}: no ratio")
                    }
                    (_, None) => {}
                }
            } else {
                // No value: a reason instead, never a number.
                let reason = r["reason"].as_str().unwrap_or_default();
                assert!(!reason.is_empty(), "{id} {rt}: {} without a reason", r["status"]);
                assert!(samples.is_empty() && r["median"].is_null(), "{r}");
            }
        }
    }
    // What must work here: every workload natively, and the runtimes' start and memory.
    for w in &workloads {
        let native = find(w["id"].as_str().unwrap(), "native");
        assert_eq!(native["status"], "ok", "{native}");
    }
    for rt in &runtimes {
        for id in ["start_exit_ms", "idle_pss_mib", "getpid_us", "sha256_mibs"] {
            let r = find(id, rt);
            assert_eq!(r["status"], "ok", "{r}");
        }
    }
    let machine = &json["machine"];
    assert!(
        machine["cores"].as_u64().unwrap() >= 1 && !machine["kernel"].as_str().unwrap().is_empty()
    );

    // Plots: one per workload, the CDF, memory and the heat map, each well-formed SVG.
    let mut svgs: Vec<String> =
        workloads.iter().map(|w| format!("{}.svg", w["id"].as_str().unwrap())).collect();
    svgs.extend(["startup_cdf.svg", "memory.svg", "overhead_heatmap.svg"].map(String::from));
    for name in &svgs {
        let text =
            std::fs::read_to_string(out.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(doc.root_element().tag_name().name(), "svg", "{name}");
    }
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(html.matches("<svg").count() >= svgs.len() && html.contains("<table>"), "index.html");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("## Summary") && md.contains("overhead_heatmap.svg"), "report.md");
}
