//! Running the outer VM: QEMU with software emulation and emulated AMD SVM, its serial console
//! read for the init's markers, every run bounded in time.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::monitor;

/// What a run inside the lane gave.
#[derive(Debug)]
pub struct Outcome {
    /// The VMM's exit status.
    pub exit_code: i32,
    /// Everything the VMM printed (the inner guest's console included).
    pub output: String,
    /// Outer VM uptime when KVM was ready, and the seconds the VMM ran.
    pub outer_ready_s: f64,
    pub vmm_s: f64,
    /// The whole QEMU run, wall clock.
    pub total: Duration,
    /// SHA-256 of files inside the outer VM after the VMM ended: (path, hex).
    pub sums: Vec<(String, String)>,
}

const QEMU: &str = "qemu-system-x86_64";

/// How long the outer VM may take to have KVM ready (it takes seconds) before the boot is
/// abandoned and tried once more.
const READY_WITHIN: Duration = Duration::from_secs(90);

/// How long the outer VM's kernel may go without a line on its console (its init prints a
/// heartbeat every 5 s) before it is taken for frozen.
const SILENT_FOR: Duration = Duration::from_secs(60);

/// How long the outer VM's console may be silent before a byte is sent down its serial line,
/// and again, until [`SILENT_FOR`]. Stalled outer VMs have been seen waiting for an interrupt
/// that never came, halted or running a nested guest that spins without exits (a likely cause:
/// QEMU 7.2's `helper_vmrun` sets `CPU_INTERRUPT_VIRQ` in the CPU's interrupt requests without
/// the lock the APIC holds to set `CPU_INTERRUPT_HARD`). The byte's serial interrupt makes the
/// APIC raise what it holds pending again (docs/kvm-host-notes.md).
const KICK_AFTER: Duration = Duration::from_secs(10);

/// How many times the outer VM is booted for one run at most.
const BOOTS: u32 = 3;

/// Boots `kernel` with `initrd` and waits for the init's report, for at most `timeout`. An
/// outer VM that never gets KVM ready, or whose kernel freezes (no heartbeat), is booted
/// again, up to [`BOOTS`] times in all: TCG boots have been seen to stall before the kernel
/// printed anything, and, rarely, the whole outer VM to stop while its nested guests ran
/// (twice in one run once). A frozen outer kernel is QEMU's, not the run's: the VMM inside is
/// a process that cannot stop it. Each freeze is logged with what QEMU's CPU was doing.
pub fn boot(
    kernel: &Path,
    initrd: &Path,
    timeout: Duration,
    forwards: &[(u16, u16)],
) -> anyhow::Result<Outcome> {
    let mut boot = 1;
    loop {
        match boot_once(kernel, initrd, timeout, boot == 1, forwards) {
            Err(e)
                if boot < BOOTS
                    && (e.downcast_ref::<NotReady>().is_some()
                        || e.downcast_ref::<Frozen>().is_some()) =>
            {
                tracing::warn!("lane: {e}; booting the outer VM again ({} of {BOOTS})", boot + 1);
                boot += 1;
            }
            other => return other,
        }
    }
}

/// The outer VM's console went silent: its kernel no longer runs. The last console lines and
/// what QEMU's CPU was doing.
#[derive(Debug)]
struct Frozen(String, String);

impl std::fmt::Display for Frozen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the outer VM froze (no heartbeat for {SILENT_FOR:?}); last console lines:\n{}\n{}",
            self.0, self.1
        )
    }
}

impl std::error::Error for Frozen {}

/// The outer VM did not report KVM ready in time.
#[derive(Debug)]
struct NotReady(Duration, String);

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the outer VM was not ready within {:?}; last console lines:\n{}", self.0, self.1)
    }
}

impl std::error::Error for NotReady {}

fn boot_once(
    kernel: &Path,
    initrd: &Path,
    timeout: Duration,
    ready_deadline: bool,
    forwards: &[(u16, u16)],
) -> anyhow::Result<Outcome> {
    let start = Instant::now();
    // The human monitor, asked what the CPU does should the console go silent.
    let monitor = initrd.with_file_name("qemu-monitor.sock");
    let _ = std::fs::remove_file(&monitor);
    let mut qemu = Command::new(QEMU);
    qemu.args(["-accel", "tcg", "-cpu", "EPYC-Rome,+svm", "-m", "2048", "-smp", "1"]).args([
        "-nographic",
        "-no-reboot",
        "-nodefaults",
        "-serial",
        "stdio",
    ]);
    qemu.arg("-monitor").arg(format!("unix:{},server=on,wait=off", monitor.display()));
    if !forwards.is_empty() {
        // User-mode networking: the host's loopback ports forwarded in, the host reachable.
        let fwd: String =
            forwards.iter().map(|(h, g)| format!(",hostfwd=tcp:127.0.0.1:{h}-:{g}")).collect();
        qemu.arg("-netdev")
            .arg(format!("user,id=n0{fwd}"))
            .args(["-device", "virtio-net-pci,netdev=n0,romfile="]);
    }
    let mut child = qemu
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", "console=ttyS0 panic=-1 loglevel=4"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {QEMU} (qemu-system-x86)"))?;
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().context("QEMU's console")?;
    let mut serial_in = child.stdin.take().context("QEMU's serial input")?;
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut console: Vec<String> = Vec::new();
    let mut output = String::new();
    let mut in_output = false;
    let mut ready = 0.0;
    let mut sums = Vec::new();
    // Until KVM is ready the first boot gets READY_WITHIN; then the whole time.
    let mut deadline = if ready_deadline { timeout.min(READY_WITHIN) } else { timeout };
    let mut heard = Instant::now();
    // Bytes sent down the serial line since the console last spoke.
    let mut kicks = 0;
    // RINGFENCE_LANE_ECHO=1 shows the outer console as it comes (a long run's progress).
    let echo = std::env::var_os("RINGFENCE_LANE_ECHO").is_some_and(|v| v == "1");
    let result = loop {
        let mut left = deadline.saturating_sub(start.elapsed());
        // Once the init runs, its heartbeat must keep coming.
        let quiet_left = (heard + SILENT_FOR).saturating_duration_since(Instant::now());
        let silent = ready > 0.0 && quiet_left < left;
        if silent {
            left = quiet_left;
        }
        let kick_left =
            (heard + KICK_AFTER * (kicks + 1)).saturating_duration_since(Instant::now());
        let kick_due = ready > 0.0 && kick_left < left;
        if kick_due {
            left = kick_left;
        }
        let line = match rx.recv_timeout(left) {
            // Markers may follow the firmware's escape sequences on the same line.
            Ok(l) => {
                let l = l.trim_end_matches('\r');
                match l.find("RINGFENCE-LANE-") {
                    Some(at) if !in_output || l[at..].starts_with("RINGFENCE-LANE-OUTPUT-END") => {
                        l[at..].to_owned()
                    }
                    _ => l.to_owned(),
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) if kick_due => {
                if kicks == 0 {
                    let state = monitor::freeze_report(child.id(), &monitor);
                    tracing::warn!(
                        "lane: the outer VM's console has been silent for {KICK_AFTER:?}; a \
                         byte down its serial line to wake it (a lost interrupt?):\n{state}"
                    );
                }
                kicks += 1;
                // The init turned the console's echo off: the byte shows nowhere.
                let _ = serial_in.write_all(b"\n").and_then(|()| serial_in.flush());
                continue;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let state = silent.then(|| monitor::freeze_report(child.id(), &monitor));
                let _ = child.kill();
                let _ = child.wait();
                if let Some(state) = state {
                    return Err(Frozen(tail(&console), state).into());
                }
                if ready_deadline && ready == 0.0 {
                    return Err(NotReady(deadline, tail(&console)).into());
                }
                bail!(
                    "the lane timed out after {deadline:?}; last console lines:\n{}",
                    tail(&console)
                );
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait()?;
                bail!(
                    "QEMU ended ({status}) without a report; last console lines:\n{}",
                    tail(&console)
                );
            }
        };
        heard = Instant::now();
        if kicks > 0 {
            tracing::warn!("lane: the outer VM woke after {kicks} byte(s) down its serial line");
            kicks = 0;
        }
        if line == "RINGFENCE-LANE-ALIVE" {
            continue;
        }
        if line == "RINGFENCE-LANE-OUTPUT-END" {
            in_output = false;
        } else if in_output {
            output.push_str(&line);
            output.push('\n');
        } else if line == "RINGFENCE-LANE-OUTPUT-BEGIN" {
            in_output = true;
        } else if let Some(t) = line.strip_prefix("RINGFENCE-LANE-READY ") {
            ready = t.trim().parse().unwrap_or(0.0);
            tracing::info!("lane: KVM ready in the outer VM at {ready} s");
            // From here the run may take the whole time it was given.
            deadline = timeout;
        } else if line.contains("RINGFENCE-LANE-NOKVM") {
            let _ = child.kill();
            bail!(
                "the outer VM has no /dev/kvm (kvm-amd did not load); console:\n{}",
                tail(&console)
            );
        } else if let Some(rest) = line.strip_prefix("RINGFENCE-LANE-SUM ") {
            if let Some((path, sum)) = rest.rsplit_once(' ') {
                sums.push((path.to_owned(), sum.to_owned()));
            }
        } else if let Some(rest) = line.strip_prefix("RINGFENCE-LANE-EXIT ") {
            let f: Vec<&str> = rest.split_whitespace().collect();
            let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            let exit_code = f.first().and_then(|v| v.parse().ok()).unwrap_or(-1);
            break Outcome {
                exit_code,
                output: std::mem::take(&mut output),
                outer_ready_s: ready,
                vmm_s: num(2) - num(1),
                total: Duration::ZERO,
                sums: std::mem::take(&mut sums),
            };
        } else {
            if echo {
                eprintln!("lane| {line}");
            }
            console.push(line);
        }
    };
    // The init powers the outer VM off; don't wait long for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait()?.is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    Ok(Outcome { total: start.elapsed(), ..result })
}

pub(super) fn tail(lines: &[String]) -> String {
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// A temporary initrd: the cached `base` archive, then `run`, concatenated.
pub fn initrd(base: &Path, run: &[u8], dir: &Path) -> anyhow::Result<PathBuf> {
    let path = dir.join("initrd.cpio");
    let mut out = std::fs::File::create(&path)?;
    std::io::copy(&mut std::fs::File::open(base)?, &mut out)?;
    std::io::Write::write_all(&mut out, run)?;
    Ok(path)
}
