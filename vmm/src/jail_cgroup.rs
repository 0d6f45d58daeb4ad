//! Cgroup limits for a jailed VMM (`--cgroup FILE=VALUE`, as Firecracker's jailer takes them):
//! a cgroup per jail under `ringfence-vmm/`, in each v1 controller named by a file's prefix,
//! or in the v2 hierarchy with those controllers enabled on the way down. The VMM moves itself
//! in before it runs guest code; the supervisor removes the cgroups when it is gone.

use std::path::{Path, PathBuf};

use crate::VmmError;

const ROOT: &str = "/sys/fs/cgroup";
const PARENT: &str = "ringfence-vmm";

/// One limit: a controller file and what to write to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    pub file: String,
    pub value: String,
}

impl std::str::FromStr for Limit {
    type Err = String;
    fn from_str(s: &str) -> Result<Limit, String> {
        let (file, value) = s.split_once('=').ok_or("expected FILE=VALUE")?;
        let ok_name = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.';
        if !file.contains('.') || !file.chars().all(ok_name) || file.starts_with('.') {
            return Err(format!("{file:?} is not a cgroup file such as cpu.max or pids.max"));
        }
        Ok(Limit { file: file.into(), value: value.into() })
    }
}

impl Limit {
    fn controller(&self) -> &str {
        self.file.split('.').next().unwrap_or_default()
    }
}

fn err(what: &str, path: &Path, e: std::io::Error) -> VmmError {
    VmmError::Config(format!("jail: cgroup: {what} {}: {e}", path.display()))
}

fn is_v2() -> bool {
    Path::new(ROOT).join("cgroup.controllers").exists()
}

/// Creates the cgroups for jail `id` and writes the limits; returns the directories to join.
pub fn create(id: &str, limits: &[Limit]) -> Result<Vec<PathBuf>, VmmError> {
    if limits.is_empty() {
        return Ok(Vec::new());
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    if is_v2() {
        let parent = Path::new(ROOT).join(PARENT);
        std::fs::create_dir_all(&parent).map_err(|e| err("creating", &parent, e))?;
        for l in limits {
            for dir in [Path::new(ROOT), &parent] {
                let sub = dir.join("cgroup.subtree_control");
                std::fs::write(&sub, format!("+{}", l.controller()))
                    .map_err(|e| err(&format!("enabling {} in", l.controller()), &sub, e))?;
            }
        }
        dirs.push(parent.join(id));
    } else {
        for l in limits {
            let dir = Path::new(ROOT).join(l.controller()).join(PARENT).join(id);
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
    }
    for dir in &dirs {
        std::fs::create_dir_all(dir).map_err(|e| err("creating", dir, e))?;
        // A v1 cpuset takes no tasks until it has CPUs and memory nodes: inherit them.
        if dir.starts_with(Path::new(ROOT).join("cpuset")) {
            for f in ["cpuset.cpus", "cpuset.mems"] {
                let from = Path::new(ROOT).join("cpuset").join(f);
                let v = std::fs::read_to_string(&from).map_err(|e| err("reading", &from, e))?;
                let _ = std::fs::write(dir.join(f), v.trim());
            }
        }
    }
    for l in limits {
        let dir = dirs
            .iter()
            .find(|d| dirs.len() == 1 || d.starts_with(Path::new(ROOT).join(l.controller())))
            .ok_or_else(|| VmmError::Config(format!("jail: no cgroup for {}", l.file)))?;
        let file = dir.join(&l.file);
        if !file.exists() {
            remove(&dirs);
            return Err(VmmError::Config(format!(
                "jail: cgroup: {} does not exist (is the {} controller there?)",
                file.display(),
                l.controller()
            )));
        }
        if let Err(e) = std::fs::write(&file, &l.value) {
            remove(&dirs);
            return Err(err(&format!("writing {:?} to", l.value), &file, e));
        }
    }
    Ok(dirs)
}

/// Moves the calling process into `dirs`.
pub fn join(dirs: &[PathBuf]) -> Result<(), VmmError> {
    for d in dirs {
        let procs = d.join("cgroup.procs");
        // "0": the writing process itself, whatever its PID namespace.
        std::fs::write(&procs, "0").map_err(|e| err("joining", &procs, e))?;
    }
    Ok(())
}

/// What removing the cgroups takes once the jail's root has replaced `/` for the supervisor
/// too (they share the mount namespace): each cgroup's parent, held open beforehand.
pub struct Removal {
    entries: Vec<(std::os::fd::OwnedFd, std::ffi::CString)>,
}

impl Removal {
    /// Opens the parents of `dirs`. The jailed process must drop this at once: the
    /// descriptors lead outside its root.
    pub fn prepare(dirs: &[PathBuf]) -> Result<Removal, VmmError> {
        use std::os::unix::ffi::OsStrExt;
        let mut entries = Vec::new();
        for d in dirs {
            let (Some(parent), Some(name)) = (d.parent(), d.file_name()) else { continue };
            let dir = std::fs::File::open(parent).map_err(|e| err("opening", parent, e))?;
            let name = std::ffi::CString::new(name.as_bytes())
                .map_err(|_| VmmError::Config("NUL in a cgroup name".into()))?;
            entries.push((dir.into(), name));
        }
        Ok(Removal { entries })
    }

    /// Removes the cgroups once empty (a reaped task leaves its cgroup a moment later).
    pub fn run(&self) {
        use std::os::fd::AsRawFd;
        for (dir, name) in &self.entries {
            for _ in 0..100 {
                // SAFETY: removing a directory entry relative to a directory we hold open.
                let rc =
                    unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), libc::AT_REMOVEDIR) };
                if rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EBUSY) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
    }
}

/// Removes the cgroups (before the jail exists).
fn remove(dirs: &[PathBuf]) {
    for d in dirs {
        let _ = std::fs::remove_dir(d);
    }
}
