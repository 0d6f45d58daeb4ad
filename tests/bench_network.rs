//! `ringfence bench network --quick`, checked as a reader of its table and JSON would: every
//! path has every metric for both data paths and both runners, with a plausible nonzero value;
//! the JSON fits the documented schema and its ratios follow from its values.

#[path = "common/bench.rs"]
mod bench;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

/// The quick run takes ~30 s here; past this it is stuck.
const WATCHDOG: Duration = Duration::from_secs(240);

/// Runs the benchmark writing JSON to `json`; its table.
fn run_bench(json: &Path) -> String {
    let json_arg = json.to_str().expect("a UTF-8 path");
    let stdout = bench::run(
        &["network", "--quick", "--json", json_arg],
        &json.with_extension("log"),
        WATCHDOG,
    );
    eprintln!("{stdout}");
    stdout
}

/// Bounds no real measurement leaves, however loaded the host: MiB/s for throughput, µs for
/// latencies (a TCP round trip takes more than 0.5 µs and, here, less than a second).
fn plausible(metric: &str, v: f64) -> bool {
    match metric {
        "throughput_mibs" => (1.0..1_000_000.0).contains(&v),
        _ => (0.5..1_000_000.0).contains(&v),
    }
}

#[test]
fn quick_run_measures_every_path_both_ways() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json_path = dir.path().join("network.json");
    let table = run_bench(&json_path);

    let json: Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    let schema: Value =
        serde_json::from_str(include_str!("../docs/bench-network.schema.json")).unwrap();
    let errors = bench::validate(&json, &schema, "$");
    assert!(errors.is_empty(), "the JSON does not fit its schema:\n{}", errors.join("\n"));
    assert_eq!(json["quick"], true);

    let paths = json["paths"].as_array().unwrap();
    let results = json["results"].as_array().unwrap();
    let titles: Vec<(&str, &str)> =
        paths.iter().map(|p| (p["id"].as_str().unwrap(), p["title"].as_str().unwrap())).collect();
    // The acceptance's paths, each once.
    for id in [
        "pod-same-node",
        "pod-other-node",
        "service-same-node",
        "service-other-node",
        "service-100-endpoints",
        "direct-100-endpoints",
    ] {
        assert_eq!(titles.iter().filter(|(i, _)| *i == id).count(), 1, "path {id}");
    }
    let value = |path: &str, metric: &str, mode: &str, runner: &str| -> f64 {
        let hits: Vec<&Value> = results
            .iter()
            .filter(|r| {
                r["path"] == path
                    && r["metric"] == metric
                    && r["proxy_mode"] == mode
                    && r["runner"] == runner
            })
            .collect();
        assert_eq!(hits.len(), 1, "{path} {metric} {mode} {runner}: {} results", hits.len());
        let r = hits[0];
        assert_eq!(r["status"], "ok", "{r}");
        let v = r["value"].as_f64().unwrap();
        assert!(plausible(metric, v), "{path} {metric} {mode} {runner}: {v}");
        v
    };
    let better: std::collections::HashMap<&str, &str> = json["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["id"].as_str().unwrap(), m["better"].as_str().unwrap()))
        .collect();
    let mut rows = 0;
    for p in paths {
        let id = p["id"].as_str().unwrap();
        let title = p["title"].as_str().unwrap();
        for metric in p["metrics"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()) {
            rows += 1;
            for mode in ["nftables", "userspace"] {
                let native = value(id, metric, mode, "native");
                let sentry = value(id, metric, mode, "sentry");
                // The ratio shown follows from the values.
                let r = results
                    .iter()
                    .find(|r| {
                        r["path"] == id
                            && r["metric"] == metric
                            && r["proxy_mode"] == mode
                            && r["runner"] == "sentry"
                    })
                    .unwrap();
                let expect =
                    if better[metric] == "lower" { sentry / native } else { native / sentry };
                let ratio = r["ratio_to_native"].as_f64().unwrap();
                assert!(bench::close(ratio, expect), "{id} {metric} {mode}: {ratio} vs {expect}");
            }
            // Every row of the table names the path and the metric and holds four numbers
            // and three ratios.
            let metric_title = json["metrics"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["id"] == metric)
                .unwrap()["title"]
                .as_str()
                .unwrap();
            let line = table
                .lines()
                .find(|l| l.starts_with(&format!("| {title} | {metric_title} |")))
                .unwrap_or_else(|| panic!("no table row for {title} / {metric_title}:\n{table}"));
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            assert_eq!(cells.len(), 10, "{line}");
            for c in &cells[3..7] {
                assert!(c.parse::<f64>().is_ok_and(|v| v > 0.0), "{line}");
            }
            for c in &cells[7..] {
                let x = c.strip_suffix('x').and_then(|x| x.parse::<f64>().ok());
                assert!(x.is_some_and(|x| x > 0.0), "{line}");
            }
        }
    }
    assert_eq!(rows, 16, "{table}");
    assert!(!table.contains("FAILED"), "{table}");
}
