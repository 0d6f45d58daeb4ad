//! `ringfence bench sentry` runs end to end against runc and runsc and prints its table (tiny
//! sizes; the numbers that matter come from the full run, see README).

use std::process::Command;

#[test]
fn bench_sentry_prints_its_table() {
    let out = Command::new(env!("CARGO_BIN_EXE_ringfence"))
        .args(["bench", "sentry", "--runs", "2", "--iterations", "400", "--forks", "4"])
        .args(["--inserts", "2000", "--writer-rows", "5"])
        .output()
        .expect("run the benchmark");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for metric in [
        "start-to-exit",
        "getpid",
        "clock_gettime",
        "open+read+close",
        "fork+exec+wait",
        "TCP round trip",
        "idle sandbox RSS",
        "find /usr",
        "10 python3 start-ups",
        "sqlite3 inserts",
        "sqlite3, 4 concurrent writers",
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(metric))
            .unwrap_or_else(|| panic!("{metric} missing:\n{stdout}"));
        // Every runtime produced a positive number.
        let numbers: Vec<f64> =
            line.split_whitespace().filter_map(|w| w.trim_end_matches('x').parse().ok()).collect();
        assert!(numbers.len() >= 5 && numbers.iter().all(|n| *n > 0.0), "{line}");
    }
}
