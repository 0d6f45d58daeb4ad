//! `ringfence bench pods` runs end to end and prints its table (a few pods; the numbers that
//! matter come from the full run, see README).

use std::process::Command;

#[test]
fn bench_pods_prints_its_table() {
    let out = Command::new(env!("CARGO_BIN_EXE_ringfence"))
        .args(["bench", "pods", "--pods", "3", "--rate", "20"])
        .output()
        .expect("run the benchmark");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let row = stdout.lines().find(|l| l.starts_with("| 3 | 20 |")).expect("a row for 3 pods");
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    let p50: f64 = cells[3].parse().expect("p50 is a number");
    let rss: f64 = cells[8].parse().expect("RSS per pod is a number");
    assert!(p50 > 0.0 && rss > 0.0, "{row}");
}
