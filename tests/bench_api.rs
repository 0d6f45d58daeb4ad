//! `ringfence bench api` runs end to end and prints its table (tiny sizes; the numbers that
//! matter come from the full run, see README).

use std::process::Command;

#[test]
fn bench_api_prints_its_table() {
    let out = Command::new(env!("CARGO_BIN_EXE_ringfence"))
        .args([
            "bench",
            "api",
            "--objects",
            "40",
            "--clients",
            "4",
            "--watchers",
            "3",
            "--seconds",
            "1",
        ])
        .args(["--qps", "20", "--backend", "embedded"])
        .output()
        .expect("run the benchmark");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for op in [
        "create",
        "get",
        "update",
        "list (limit 500)",
        "create @ 20 QPS",
        "watch fan-out (3 watchers)",
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(op) && l.contains("embedded")),
            "no {op:?} row:\n{stdout}"
        );
    }
}
