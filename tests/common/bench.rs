//! What the benchmark smoke tests share: running `ringfence bench ...` under a watchdog, and
//! checking its JSON against the documented schema.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Runs `ringfence bench <args>` with its stderr in `log`; its stdout. Fails with the log (and
/// the processes left) if it does not end within `watchdog`, or with its output if it fails.
pub fn run(args: &[&str], log: &Path, watchdog: Duration) -> String {
    let file = std::fs::File::create(log).expect("log file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringfence"))
        .arg("bench")
        .args(args)
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
        if start.elapsed() > watchdog {
            let ps = Command::new("ps").args(["-eo", "pid,ppid,etimes,args", "--forest"]).output();
            let ps =
                ps.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "bench {args:?} still running after {watchdog:?}\n--- its log:\n{}\n--- processes:\n{ps}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let stdout = reader.join().unwrap_or_default();
    let stderr = std::fs::read_to_string(log).unwrap_or_default();
    assert!(status.success(), "{status}\n{stdout}\n{stderr}");
    eprintln!("{stderr}");
    stdout
}

/// Checks `v` against the subset of JSON Schema the documented schemas use: type (one or a
/// list), enum, required, properties, items.
pub fn validate(v: &Value, schema: &Value, at: &str) -> Vec<String> {
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

/// Equal but for floating-point rounding.
pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-12)
}
