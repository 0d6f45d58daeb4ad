//! Memory of process trees, from /proc; stopping the processes a benchmark started.

use std::process::Child;
use std::time::{Duration, Instant};

/// SIGTERM (so that e.g. `ringfence up` stops its pods), then SIGKILL after `grace`.
pub fn terminate(child: &mut Child, grace: Duration) {
    // SAFETY: signalling our own child process, not yet reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let start = Instant::now();
    while start.elapsed() < grace {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Sums a `/proc/PID/<file>` field (in KiB) over `pid` and all its descendants.
fn tree_sum_kib(pid: u32, file: &str, field: &str) -> u64 {
    let mut total = 0;
    let mut stack = vec![pid];
    while let Some(p) = stack.pop() {
        let text = std::fs::read_to_string(format!("/proc/{p}/{file}")).unwrap_or_default();
        total += text
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0);
        stack.extend(children(p));
    }
    total
}

/// The direct children of `pid` (of all its threads).
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten() {
        let text = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        out.extend(text.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
    }
    out
}

/// Resident memory of `pid` and its descendants, in KiB (shared pages counted in each).
pub fn tree_rss_kib(pid: u32) -> u64 {
    tree_sum_kib(pid, "status", "VmRSS:")
}

/// Proportional set size of `pid` and its descendants, in KiB (shared pages split fairly).
pub fn tree_pss_kib(pid: u32) -> u64 {
    tree_sum_kib(pid, "smaps_rollup", "Pss:")
}
