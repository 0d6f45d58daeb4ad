//! `ringfence bench virtio` runs end to end and prints its table (briefly; the numbers that
//! matter come from a release build, see README).

use std::process::Command;

#[test]
fn bench_virtio_prints_its_table() {
    let out = Command::new(env!("CARGO_BIN_EXE_ringfence"))
        .args(["bench", "virtio", "--seconds", "0.2"])
        .output()
        .expect("run the benchmark");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for row in [
        "| blk read 4 KiB |",
        "| blk write 64 KiB |",
        "| net receive 1514 B |",
        "| rate limiter decision",
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("no {row:?} row:\n{stdout}"));
        let per_s: f64 = line.split('|').nth(2).unwrap().trim().parse().unwrap();
        assert!(per_s > 0.0, "{line}");
    }
}
