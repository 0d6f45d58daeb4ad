//! `ringfence bench vmm`: this VMM against QEMU's microvm machine booting the same tiny guest
//! (an ELF with a PVH note that writes one byte to the serial port and resets): process start
//! to the first serial byte, to exit, and peak RSS, medians of N runs of each, same machine,
//! same run.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::stats::Samples;

/// Targets from the issue (Firecracker v1.16 on this machine type: 14 ms and 4.15 MiB).
pub const TARGET_FIRST_BYTE_MS: f64 = 12.0;
pub const TARGET_RSS_MIB: f64 = 4.0;

pub struct Row {
    pub name: String,
    pub first_byte_ms: f64,
    pub exit_ms: f64,
    pub rss_mib: f64,
}

/// One run: (time to the first byte on stdout, time to exit, peak RSS in KiB). The peak RSS
/// comes from `/usr/bin/time`: a child forked by this (large) process would count this
/// process's pages in its own high-water mark.
fn measure(inner: Command) -> anyhow::Result<(Duration, Duration, u64)> {
    let report = tempfile::NamedTempFile::new()?;
    let mut cmd = Command::new("/usr/bin/time");
    cmd.args(["-f", "%M", "-o"]).arg(report.path()).arg(inner.get_program()).args(inner.get_args());
    let start = Instant::now();
    let mut child =
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn()?;
    let mut out = child.stdout.take().context("stdout")?;
    let mut byte = [0u8; 1];
    let n = out.read(&mut byte)?;
    let first = start.elapsed();
    if n == 0 {
        bail!("{cmd:?} printed nothing");
    }
    let status = child.wait()?;
    let exited = start.elapsed();
    if !status.success() {
        bail!("{cmd:?} ended with {status}");
    }
    let text = std::fs::read_to_string(report.path())?;
    let kib = text
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .with_context(|| format!("/usr/bin/time reported {text:?}"))?;
    Ok((first, exited, kib))
}

fn series(name: &str, runs: usize, make: impl Fn() -> Command) -> anyhow::Result<Row> {
    let (mut first, mut exit, mut rss) = (Samples::default(), Samples::default(), Vec::new());
    // One warm-up run (page cache, dynamic loader) that does not count.
    measure(make())?;
    for _ in 0..runs {
        let (f, e, r) = measure(make())?;
        first.push(f);
        exit.push(e);
        rss.push(r);
    }
    rss.sort_unstable();
    Ok(Row {
        name: name.into(),
        first_byte_ms: first.percentile_ms(50.0),
        exit_ms: exit.percentile_ms(50.0),
        rss_mib: rss[rss.len() / 2] as f64 / 1024.0,
    })
}

pub fn run(runs: usize) -> anyhow::Result<Vec<Row>> {
    let dir = tempfile::tempdir()?;
    let guest = dir.path().join("tiny.elf");
    let mut code = vmm::tiny::print(b"x");
    code.extend_from_slice(&vmm::tiny::RESET);
    std::fs::write(&guest, vmm::tiny::pvh_elf(&code))?;
    // The VMM process itself (what `ringfence vm run` executes).
    let exe = std::env::current_exe()?.with_file_name("ringfence-vmm");
    let ours = series("ringfence-vmm", runs, || {
        let mut c = Command::new(&exe);
        c.args(["--mem", "16", "--kernel"]).arg(&guest);
        c
    })?;
    let qemu = series("qemu-system-x86_64 -M microvm", runs, || qemu_command(&guest))
        .context("QEMU (qemu-system-x86, installed by scripts/setup)")?;
    Ok(vec![ours, qemu])
}

fn qemu_command(guest: &Path) -> Command {
    let mut c = Command::new("qemu-system-x86_64");
    c.args(["-M", "microvm", "-nodefaults", "-no-user-config", "-display", "none"])
        .args(["-serial", "stdio", "-m", "16", "-no-reboot", "-accel", "kvm", "-kernel"])
        .arg(guest);
    c
}

pub fn render(rows: &[Row], runs: usize) -> String {
    let mut out = format!(
        "Tiny PVH guest (one serial byte, then reset), medians of {runs} runs each\n\n\
         | VMM | start -> first byte ms | start -> exit ms | peak RSS MiB | first byte vs target {TARGET_FIRST_BYTE_MS} ms | RSS vs target {TARGET_RSS_MIB} MiB |\n\
         |---|---|---|---|---|---|\n"
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {:.1} | {:.1} | {:.2} | {:.2}x | {:.2}x |\n",
            r.name,
            r.first_byte_ms,
            r.exit_ms,
            r.rss_mib,
            r.first_byte_ms / TARGET_FIRST_BYTE_MS,
            r.rss_mib / TARGET_RSS_MIB
        ));
    }
    if let [ours, qemu] = rows {
        out.push_str(&format!(
            "\nringfence-vmm vs QEMU microvm: first byte {:.2}x, exit {:.2}x, RSS {:.2}x (lower is better)\n",
            ours.first_byte_ms / qemu.first_byte_ms,
            ours.exit_ms / qemu.exit_ms,
            ours.rss_mib / qemu.rss_mib
        ));
    }
    out
}
