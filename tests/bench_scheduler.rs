//! `ringfence bench scheduler` runs end to end and prints its table (tiny sizes; the numbers
//! that matter come from the full run, see README).

use std::process::Command;

#[test]
fn bench_scheduler_prints_its_table() {
    let out = Command::new(env!("CARGO_BIN_EXE_ringfence"))
        .args(["bench", "scheduler", "--pods", "60", "--nodes", "12", "--group", "6"])
        .output()
        .expect("run the benchmark");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for w in ["| plain | 60 | 12 |", "| anti-affinity (groups of 6) | 60 | 12 |"] {
        assert!(stdout.lines().any(|l| l.starts_with(w)), "no {w:?} row:\n{stdout}");
    }
}
