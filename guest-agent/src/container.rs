//! Containers inside the guest: a root filesystem mounted read-only from a block device, a
//! writable overlay layer on tmpfs, /proc, /dev and /sys inside, and a cgroup for its
//! processes.

use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};

/// Where containers are assembled (on the tmpfs at /run).
pub const CONTAINERS_DIR: &str = "/run/ringfence/containers";
/// The cgroup v2 hierarchy the agent mounts.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("container id {0:?}: use 1-64 letters, digits, '-', '_' or '.'")]
    BadId(String),
    #[error("device {0:?} is not a block device under /dev")]
    BadDevice(String),
    #[error("file system type {0:?}: ext4 or erofs")]
    BadFsType(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> ContainerError {
    let what = what.into();
    move |source| ContainerError::Io { what, source }
}

/// Checks a container id: it names directories and a cgroup, so no separators or dots only.
pub fn check_id(id: &str) -> Result<(), ContainerError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id != "."
        && id != ".."
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok { Ok(()) } else { Err(ContainerError::BadId(id.to_owned())) }
}

/// A mounted container.
#[derive(Debug, Clone)]
pub struct Container {
    pub id: String,
    pub dir: PathBuf,
}

impl Container {
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
    pub fn cgroup(&self) -> PathBuf {
        Path::new(CGROUP_ROOT).join(&self.id)
    }
}

fn cstr(p: &Path) -> Result<CString, ContainerError> {
    CString::new(p.as_os_str().as_encoded_bytes()).map_err(|_| ContainerError::Io {
        what: format!("{p:?}"),
        source: io::ErrorKind::InvalidInput.into(),
    })
}

/// mount(2) with the error naming what was mounted where.
pub fn mount(
    source: &str,
    target: &Path,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> Result<(), ContainerError> {
    let what = format!("mounting {source} ({fstype}) on {}", target.display());
    let src = CString::new(source).map_err(|_| ContainerError::BadDevice(source.to_owned()))?;
    let fst = CString::new(fstype).map_err(|_| ContainerError::BadFsType(fstype.to_owned()))?;
    let dat = CString::new(data).map_err(|_| ContainerError::BadFsType(data.to_owned()))?;
    let tgt = cstr(target)?;
    // SAFETY: every pointer is a NUL-terminated string that outlives the call.
    let r = unsafe {
        libc::mount(src.as_ptr(), tgt.as_ptr(), fst.as_ptr(), flags, dat.as_ptr().cast())
    };
    if r != 0 {
        return Err(ContainerError::Io { what, source: io::Error::last_os_error() });
    }
    Ok(())
}

fn umount(target: &Path) {
    if let Ok(t) = cstr(target) {
        // SAFETY: a NUL-terminated path; a failure (not mounted) is ignored on purpose.
        unsafe { libc::umount2(t.as_ptr(), libc::MNT_DETACH) };
    }
}

/// Mounts `device` read-only as the lower layer of a new container `id`.
pub fn create(id: &str, device: &str, fstype: &str) -> Result<Container, ContainerError> {
    check_id(id)?;
    let fstype = if fstype.is_empty() { "ext4" } else { fstype };
    if !matches!(fstype, "ext4" | "erofs") {
        return Err(ContainerError::BadFsType(fstype.to_owned()));
    }
    let dev = Path::new(device);
    let is_block = std::fs::metadata(dev)
        .map(|m| std::os::unix::fs::FileTypeExt::is_block_device(&m.file_type()))
        .unwrap_or(false);
    if !device.starts_with("/dev/") || device.contains("..") || !is_block {
        return Err(ContainerError::BadDevice(device.to_owned()));
    }
    let dir = Path::new(CONTAINERS_DIR).join(id);
    std::fs::create_dir(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
    let c = Container { id: id.to_owned(), dir };
    if let Err(e) = assemble(&c, device, fstype) {
        teardown(&c);
        let _ = std::fs::remove_dir_all(&c.dir);
        return Err(e);
    }
    Ok(c)
}

fn assemble(c: &Container, device: &str, fstype: &str) -> Result<(), ContainerError> {
    for d in ["lower", "upper", "work", "rootfs"] {
        let p = c.dir.join(d);
        std::fs::create_dir(&p).map_err(io_err(format!("creating {}", p.display())))?;
    }
    mount(device, &c.dir.join("lower"), fstype, libc::MS_RDONLY, "")?;
    let layers = format!(
        "lowerdir={},upperdir={},workdir={}",
        c.dir.join("lower").display(),
        c.dir.join("upper").display(),
        c.dir.join("work").display()
    );
    let root = c.rootfs();
    mount("overlay", &root, "overlay", 0, &layers)?;
    for (dir, fs, flags) in [
        ("proc", "proc", libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC),
        ("sys", "sysfs", libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_RDONLY),
        ("dev", "devtmpfs", libc::MS_NOSUID),
        ("tmp", "tmpfs", libc::MS_NOSUID | libc::MS_NODEV),
    ] {
        let p = root.join(dir);
        std::fs::create_dir_all(&p).map_err(io_err(format!("creating {}", p.display())))?;
        mount(fs, &p, fs, flags, "")?;
    }
    std::fs::create_dir(c.cgroup())
        .map_err(io_err(format!("creating {}", c.cgroup().display())))?;
    Ok(())
}

/// Kills the container's processes (cgroup.kill) and unmounts it, innermost first.
pub fn teardown(c: &Container) {
    let cg = c.cgroup();
    if cg.exists() {
        let _ = std::fs::write(cg.join("cgroup.kill"), "1");
        // The cgroup can be removed once its processes are gone (reaped by PID 1).
        for _ in 0..100 {
            if std::fs::remove_dir(&cg).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    let root = c.rootfs();
    for d in ["tmp", "dev", "sys", "proc"] {
        umount(&root.join(d));
    }
    umount(&root);
    umount(&c.dir.join("lower"));
}

/// Removes a container's directory once [`teardown`] ran.
pub fn remove(c: &Container) {
    teardown(c);
    let _ = std::fs::remove_dir_all(&c.dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_could_escape_are_refused() {
        for bad in ["", ".", "..", "a/b", "../x", "a b", &"x".repeat(65)] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
        for good in ["web", "pod-1.c_2", "a"] {
            assert!(check_id(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn bad_devices_and_types_are_refused_before_anything_is_made() {
        assert!(matches!(create("x", "/etc/passwd", "ext4"), Err(ContainerError::BadDevice(_))));
        assert!(matches!(create("x", "/dev/null", "ext4"), Err(ContainerError::BadDevice(_))));
        assert!(matches!(create("x", "/dev/vda", "ntfs"), Err(ContainerError::BadFsType(_))));
        assert!(!Path::new(CONTAINERS_DIR).join("x").exists());
    }
}
