//! What a sandbox leaves on the host when the runtime dies with it running (or while it
//! starts): its processes (a Sentry, a VMM and its jail, a virtiofsd: each names the
//! sandbox's directory on its command line), mounts under its directory and its network
//! namespace (recorded in the directory before the sandbox starts). A runtime starting on the
//! same directory takes every sandbox there down before it serves.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::mounts;

/// The record's file in a sandbox's directory.
const RECORD: &str = "sandbox.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxRecord {
    /// Its network namespace (named, under /run/netns).
    pub netns: Option<String>,
}

/// Writes `record` into sandbox directory `dir`.
pub fn record(dir: &Path, record: &SandboxRecord) -> std::io::Result<()> {
    let text = serde_json::to_string(record).map_err(std::io::Error::other)?;
    std::fs::write(dir.join(RECORD), text)
}

/// The processes whose command line names `dir`: a sandbox's own (pids are not trusted:
/// they are recycled).
fn processes_naming(dir: &Path) -> Vec<i32> {
    let needle = dir.as_os_str().as_encoded_bytes();
    let Ok(procs) = std::fs::read_dir("/proc") else { return Vec::new() };
    procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.windows(needle.len()).any(|w| w == needle))
        })
        .collect()
}

/// Removes a sandbox's directory, unmounting what is mounted under it first: a bind of an
/// image or a volume must never be emptied through it. Leaves the directory when something
/// stays mounted.
pub fn remove_dir(dir: &Path) {
    for m in mounts::mounts_under(dir) {
        mounts::unmount(&m);
    }
    let left = mounts::mounts_under(dir);
    if !left.is_empty() {
        tracing::warn!(dir = %dir.display(), ?left, "still mounted: the directory stays");
        return;
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Takes down every sandbox recorded under `sandboxes` (the runtime's own directory, at its
/// start): kills their processes, unmounts, deletes their namespaces and directories.
pub fn sweep(sandboxes: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(sandboxes) else { return 0 };
    let mut swept = 0;
    for entry in entries.flatten() {
        let dir = entry.path();
        if !dir.is_dir() {
            continue;
        }
        let rec: SandboxRecord = std::fs::read_to_string(dir.join(RECORD))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        for pid in processes_naming(&dir) {
            // SAFETY: kill has no memory effects; the process names the sandbox's directory.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        if let Some(ns) = &rec.netns {
            let _ = std::process::Command::new("ip").args(["netns", "del", ns]).output();
        }
        remove_dir(&dir);
        tracing::info!(sandbox = %dir.display(), "removed what a previous run left");
        swept += 1;
    }
    swept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_sandbox_is_taken_down_and_strangers_are_spared() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("abc123");
        std::fs::create_dir_all(dir.join("share")).unwrap();
        // A process of the sandbox (its command line names the directory), and one that is not.
        let mut ours = std::process::Command::new("sh")
            .args(["-c", "sleep 60", dir.to_str().unwrap()])
            .spawn()
            .unwrap();
        let mut stranger = std::process::Command::new("sleep").arg("60").spawn().unwrap();
        let src = tempfile::tempdir().unwrap();
        mounts::bind(src.path(), &dir.join("share/x"), true).unwrap();
        record(&dir, &SandboxRecord { netns: None }).unwrap();
        assert_eq!(sweep(root.path()), 1);
        assert!(ours.wait().unwrap().code().is_none(), "killed");
        assert!(stranger.try_wait().unwrap().is_none(), "spared");
        assert!(!dir.exists());
        assert!(mounts::mounts_under(root.path()).is_empty());
        let _ = stranger.kill();
        let _ = stranger.wait();
    }
}
