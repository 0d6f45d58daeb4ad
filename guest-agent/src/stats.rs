//! CPU and memory use: a container's from its cgroup, the guest's from /proc.

use std::path::Path;

use crate::proto::StatsResponse;

fn field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?;
        rest.trim_start_matches(':').split_whitespace().next()?.parse().ok()
    })
}

/// The guest's memory, and its CPU time when no cgroup is asked about.
pub fn guest() -> StatsResponse {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mut s = StatsResponse {
        guest_memory_total_bytes: field(&meminfo, "MemTotal").unwrap_or(0) * 1024,
        guest_memory_available_bytes: field(&meminfo, "MemAvailable").unwrap_or(0) * 1024,
        ..Default::default()
    };
    // The first line of /proc/stat: user nice system idle iowait irq softirq steal, in ticks.
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    if let Some(cpu) = stat.lines().next().and_then(|l| l.strip_prefix("cpu ")) {
        let v: Vec<u64> = cpu.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        let busy: u64 =
            v.iter().enumerate().filter(|(i, _)| !matches!(i, 3 | 4)).map(|(_, x)| x).sum();
        // SAFETY: sysconf has no memory effects.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        s.cpu_usage_usec = busy * 1_000_000 / hz;
    }
    s.memory_bytes = s.guest_memory_total_bytes.saturating_sub(s.guest_memory_available_bytes);
    s
}

/// A container's use from its cgroup (v2), with the guest's memory alongside.
pub fn cgroup(dir: &Path) -> std::io::Result<StatsResponse> {
    let cpu = std::fs::read_to_string(dir.join("cpu.stat"))?;
    let mut s = guest();
    s.cpu_usage_usec = field(&cpu, "usage_usec").unwrap_or(0);
    s.memory_bytes = std::fs::read_to_string(dir.join("memory.current"))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    s.processes = std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|t| t.lines().count() as u32)
        .unwrap_or(0);
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_parse_in_both_shapes() {
        assert_eq!(field("MemTotal:  1024 kB\nMemAvailable: 10 kB", "MemAvailable"), Some(10));
        assert_eq!(field("usage_usec 1234\nuser_usec 1", "usage_usec"), Some(1234));
        assert_eq!(field("x 1", "y"), None);
    }

    #[test]
    fn the_guest_figures_are_real() {
        let s = guest();
        assert!(s.guest_memory_total_bytes > 0);
        assert!(s.guest_memory_available_bytes <= s.guest_memory_total_bytes);
        assert!(s.cpu_usage_usec > 0);
    }
}
