//! CPU limits of pod sandboxes through the host's cgroups: `cpu.max` under cgroup v2, or the
//! CFS quota of cgroup v1's cpu controller, in a `ringfence/<sandbox>` group per sandbox.

use std::path::{Path, PathBuf};

use super::CriError;

/// CFS bandwidth: `quota_us` of CPU time per `period_us`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuLimit {
    pub quota_us: u64,
    pub period_us: u64,
}

impl CpuLimit {
    /// From the CRI's fields (a quota of 0 or less means no limit).
    pub fn from_cri(quota: i64, period: i64) -> Option<CpuLimit> {
        let period_us = if period > 0 { period as u64 } else { 100_000 };
        (quota > 0).then_some(CpuLimit { quota_us: (quota as u64).max(1000), period_us })
    }

    /// Whole CPUs that cover the limit (at least one): a VM's vCPU count.
    pub fn cpus(&self) -> u32 {
        self.quota_us.div_ceil(self.period_us).clamp(1, 32) as u32
    }

    /// The limit as the files a jail writes (`FILE=VALUE`), for this host's cgroup version.
    pub fn jail_limits(&self) -> Vec<String> {
        if Path::new(V2_ROOT).join("cgroup.controllers").exists() {
            vec![format!("cpu.max={} {}", self.quota_us, self.period_us)]
        } else {
            vec![
                format!("cpu.cfs_period_us={}", self.period_us),
                format!("cpu.cfs_quota_us={}", self.quota_us),
            ]
        }
    }
}

/// A sandbox's group; removed when dropped (after its processes are gone).
pub struct SandboxCgroup {
    dir: PathBuf,
}

const V2_ROOT: &str = "/sys/fs/cgroup";
const V1_CPU: &str = "/sys/fs/cgroup/cpu";

fn write(path: &Path, value: &str) -> Result<(), CriError> {
    std::fs::write(path, value)
        .map_err(|e| CriError::Sandbox(format!("writing {value:?} to {}: {e}", path.display())))
}

impl SandboxCgroup {
    /// Puts process `pid` (all its threads) into a new group for sandbox `id` with `limit`.
    pub fn create(id: &str, limit: CpuLimit, pid: u32) -> Result<SandboxCgroup, CriError> {
        let v2 = Path::new(V2_ROOT).join("cgroup.controllers");
        let (dir, files) = if v2.exists() {
            let parent = Path::new(V2_ROOT).join("ringfence");
            std::fs::create_dir_all(&parent)?;
            // The cpu controller must be enabled for the children of both levels.
            write(&Path::new(V2_ROOT).join("cgroup.subtree_control"), "+cpu")?;
            write(&parent.join("cgroup.subtree_control"), "+cpu")?;
            let dir = parent.join(id);
            std::fs::create_dir_all(&dir)?;
            let max = format!("{} {}", limit.quota_us, limit.period_us);
            (dir, vec![("cpu.max", max)])
        } else if Path::new(V1_CPU).join("cpu.cfs_quota_us").exists() {
            let dir = Path::new(V1_CPU).join("ringfence").join(id);
            std::fs::create_dir_all(&dir)?;
            let files = vec![
                ("cpu.cfs_period_us", limit.period_us.to_string()),
                ("cpu.cfs_quota_us", limit.quota_us.to_string()),
            ];
            (dir, files)
        } else {
            return Err(CriError::Sandbox(
                "CPU limits need the cgroup cpu controller, which this host does not offer".into(),
            ));
        };
        let group = SandboxCgroup { dir };
        for (file, value) in files {
            write(&group.dir.join(file), &value)?;
        }
        write(&group.dir.join("cgroup.procs"), &pid.to_string())?;
        Ok(group)
    }

    /// Changes the limit of a running sandbox.
    pub fn set(&self, limit: CpuLimit) -> Result<(), CriError> {
        if self.dir.join("cpu.max").exists() {
            write(&self.dir.join("cpu.max"), &format!("{} {}", limit.quota_us, limit.period_us))
        } else {
            // v1 refuses a period below the current quota/period ratio: quota first to -1.
            write(&self.dir.join("cpu.cfs_quota_us"), "-1")?;
            write(&self.dir.join("cpu.cfs_period_us"), &limit.period_us.to_string())?;
            write(&self.dir.join("cpu.cfs_quota_us"), &limit.quota_us.to_string())
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for SandboxCgroup {
    fn drop(&mut self) {
        // Fails while processes remain; they are gone once the sandbox stopped.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        tracing::warn!("could not remove {}", self.dir.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_from_the_cri() {
        assert_eq!(CpuLimit::from_cri(0, 100_000), None);
        assert_eq!(CpuLimit::from_cri(-1, 0), None);
        assert_eq!(
            CpuLimit::from_cri(25_000, 0),
            Some(CpuLimit { quota_us: 25_000, period_us: 100_000 })
        );
        // The kernel's minimum quota is 1 ms.
        assert_eq!(CpuLimit::from_cri(10, 100_000).map(|l| l.quota_us), Some(1000));
    }
}
