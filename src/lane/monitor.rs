//! What the outer VM's CPU is doing when its console has gone silent: QEMU's own CPU time, its
//! threads, and its human monitor's `info lapic` and `info registers` (sampled twice). A vector
//! pending in the IRR that the CPU does not take is a lost interrupt; a CPU that burns a host
//! CPU at a moving RIP is a livelock in the outer kernel (or in the nested guest it runs), one
//! at a fixed RIP a spin.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long the two samples are apart.
const APART: Duration = Duration::from_secs(1);

/// A report on QEMU `pid`, whose monitor listens on `socket`; never fails (what cannot be
/// read says so).
pub fn freeze_report(pid: u32, socket: &Path) -> String {
    let mut report = String::new();
    let cpu_before = cpu_seconds(pid);
    let first = registers(socket);
    std::thread::sleep(APART);
    let cpu_after = cpu_seconds(pid);
    let second = registers(socket);
    match (cpu_before, cpu_after) {
        (Some(a), Some(b)) => report.push_str(&format!(
            "QEMU used {:.0}% of a host CPU over {APART:?}\n",
            (b - a) / APART.as_secs_f64() * 100.0
        )),
        _ => report.push_str("QEMU's CPU time: unreadable\n"),
    }
    report.push_str(&threads(pid));
    match ask(socket, "info lapic") {
        Ok(text) => {
            report.push_str("info lapic:\n");
            report.push_str(&indented(
                text.lines().filter(|l| !l.trim().is_empty() && !l.starts_with(PROMPT)),
            ));
        }
        Err(e) => report.push_str(&format!("info lapic: the monitor did not answer: {e}\n")),
    }
    let same = matches!((&first, &second), (Ok(a), Ok(b)) if a == b);
    for (n, sample) in [first, second].into_iter().enumerate() {
        report.push_str(&format!("info registers, sample {}:\n", n + 1));
        match sample {
            Ok(_) if n == 1 && same => report.push_str("  (the same)\n"),
            Ok(text) => report.push_str(&text),
            Err(e) => report.push_str(&format!("  (the monitor did not answer: {e})\n")),
        }
    }
    report
}

/// Each QEMU thread's name, state and kernel wait channel: a vCPU thread asleep in a futex
/// while its CPU is not halted is QEMU deadlocked on itself, not the guest.
fn threads(pid: u32) -> String {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return "QEMU's threads: unreadable\n".to_owned();
    };
    let mut text = String::from("QEMU's threads (name, state, wait channel):\n");
    for task in tasks.flatten() {
        let dir = task.path();
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
        let stat = read("stat");
        let state = stat.rfind(')').and_then(|at| stat.get(at + 2..at + 3)).unwrap_or("?");
        text.push_str(&format!("  {} {state} {}\n", read("comm").trim(), read("wchan").trim()));
    }
    text
}

/// User and system time of process `pid`, in seconds.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may hold spaces: state is the 3rd field overall.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf reads a constant of the system and touches no memory of ours.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| ticks / hz as f64)
}

/// The general, segment, control and EFER registers from `info registers` (the vector
/// registers left out).
fn registers(socket: &Path) -> std::io::Result<String> {
    let answer = ask(socket, "info registers")?;
    let vector = |l: &&str| l.starts_with("FCW=") || l.starts_with("XMM") || l.starts_with("YMM");
    Ok(indented(answer.lines().take_while(|l| !vector(l)).filter(|l| l.contains('='))))
}

/// `lines`, each indented under its heading in the report.
fn indented<'a>(lines: impl Iterator<Item = &'a str>) -> String {
    lines.map(|l| format!("  {}\n", l.trim_end())).collect()
}

/// One command to the human monitor: its answer, up to the next prompt.
fn ask(socket: &Path, command: &str) -> std::io::Result<String> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    read_to_prompt(&mut stream)?;
    stream.write_all(format!("{command}\n").as_bytes())?;
    // The first line is the monitor echoing the command as it was typed.
    let answer = read_to_prompt(&mut stream)?;
    Ok(answer.split_once('\n').map(|(_, rest)| rest.to_owned()).unwrap_or_default())
}

const PROMPT: &str = "(qemu) ";

fn read_to_prompt(stream: &mut UnixStream) -> std::io::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
        if String::from_utf8_lossy(&seen).trim_end().ends_with(PROMPT.trim_end()) {
            break;
        }
    }
    let text = String::from_utf8_lossy(&seen).replace('\r', "");
    Ok(strip_escapes(&text))
}

/// Drops ANSI escape sequences (ESC '[' parameters final-byte).
fn strip_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if ('@'..='~').contains(&d) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_dropped_and_text_kept() {
        assert_eq!(strip_escapes("a\u{1b}[K\u{1b}[Db=1\n"), "ab=1\n");
    }

    #[test]
    fn this_process_has_a_cpu_time() {
        assert!(cpu_seconds(std::process::id()).is_some());
        assert!(cpu_seconds(u32::MAX).is_none());
    }
}
