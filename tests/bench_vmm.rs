//! `ringfence bench vmm` runs end to end against QEMU and prints its table (two runs each; the
//! numbers that matter come from the full run, see README).

use std::process::Command;

#[test]
fn bench_vmm_prints_its_table() {
    let out = Command::new(env!("CARGO_BIN_EXE_ringfence"))
        .args(["bench", "vmm", "--runs", "2"])
        .output()
        .expect("run the benchmark");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for row in ["| ringfence-vmm |", "| qemu-system-x86_64 -M microvm |"] {
        assert!(stdout.lines().any(|l| l.starts_with(row)), "no {row:?} row:\n{stdout}");
    }
}
