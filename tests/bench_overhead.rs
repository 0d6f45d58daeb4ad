//! `ringfence bench overhead --quick` with native, runc, the Sentry (and runsc where it is
//! installed), checked as a reader of the report would: every workload has a value or a
//! reason in every runtime, results.json validates against the schema written beside it, the
//! plots are well-formed SVG, and the medians and ratios follow from the samples.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

/// Runs the benchmark into `out`, failing with its output (and the processes left) if it
/// does not end within the watchdog's time.
fn run_bench(out: &Path, runtimes: &str) -> String {
    let log = out.with_extension("log");
    let file = std::fs::File::create(&log).expect("log file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringfence"))
        .args(["bench", "overhead", "--quick", "--runtimes", runtimes, "--out"])
        .arg(out)
        .stdout(Stdio::piped())
        .stderr(file)
        .spawn()
        .expect("start the benchmark");
    let stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if start.elapsed() > WATCHDOG {
            let ps = Command::new("ps").args(["-eo", "pid,ppid,etimes,args", "--forest"]).output();
            let ps =
                ps.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "bench overhead still running after {WATCHDOG:?}\n--- its log:\n{}\n--- processes:\n{ps}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let stdout = reader.join().unwrap_or_default();
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "{status}\n{stdout}\n{stderr}");
    eprintln!("{stderr}");
    stdout
}

/// Checks `v` against the subset of JSON Schema the documented schema uses: type (one or a
/// list), enum, required, properties, items.
fn validate(v: &Value, schema: &Value, at: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let fits = |t: &str| match t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            "number" => v.is_number(),
            "integer" => v.is_u64() || v.is_i64(),
            _ => false,
        };
        if !types.iter().any(|t| fits(t)) {
            errors.push(format!("{at}: {v} is not {types:?}"));
            return errors;
        }
    }
    if let Some(Value::Array(allowed)) = schema.get("enum")
        && !allowed.contains(v)
    {
        errors.push(format!("{at}: {v} not in {allowed:?}"));
    }
    if let Some(Value::Array(required)) = schema.get("required") {
        for r in required.iter().filter_map(Value::as_str) {
            if v.get(r).is_none() {
                errors.push(format!("{at}: missing {r}"));
            }
        }
    }
    if let (Some(Value::Object(props)), Value::Object(obj)) = (schema.get("properties"), v) {
        for (k, sub) in props {
            if let Some(x) = obj.get(k) {
                errors.extend(validate(x, sub, &format!("{at}.{k}")));
            }
        }
    }
    if let (Some(items), Value::Array(a)) = (schema.get("items"), v) {
        for (i, x) in a.iter().enumerate() {
            errors.extend(validate(x, items, &format!("{at}[{i}]")));
        }
    }
    errors
}

fn median(samples: &[f64]) -> f64 {
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-12)
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
    let errors = validate(&json, &schema, "$");
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
                assert!(close(m, median(&samples)), "{id} {rt}: median {m} vs {samples:?}");
                let lo = samples.iter().copied().fold(f64::INFINITY, f64::min);
                assert!(close(r["min"].as_f64().unwrap(), lo), "{r}");
                let native = find(id, "native");
                match (r["ratio_to_native"].as_f64(), native["median"].as_f64()) {
                    (Some(ratio), Some(n)) => {
                        let expect = if w["better"] == "lower" { m / n } else { n / m };
                        assert!(
                            close(ratio, expect),
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
