//! What PID 1 sets up before serving: the pseudo file systems, cgroup v2 with its
//! controllers, loopback and the network named on the command line.

use std::path::Path;

use crate::cmdline::Cmdline;
use crate::container::{self, CGROUP_ROOT, ContainerError};
use crate::network::{self, InterfaceConfig};

fn mount_once(
    source: &str,
    target: &str,
    fstype: &str,
    flags: libc::c_ulong,
) -> Result<(), ContainerError> {
    let t = Path::new(target);
    let _ = std::fs::create_dir_all(t);
    match container::mount(source, t, fstype, flags, "") {
        // Already there (e.g. the kernel mounted devtmpfs).
        Err(ContainerError::Io { source, .. }) if source.raw_os_error() == Some(libc::EBUSY) => {
            Ok(())
        }
        r => r,
    }
}

const NODEV: libc::c_ulong = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;

/// Mounts /proc: first of all, since the kernel command line is read from there.
pub fn mount_proc() -> Result<(), ContainerError> {
    mount_once("proc", "/proc", "proc", NODEV)
}

/// Mounts /sys, /dev, the cgroup2 hierarchy, /run and /tmp, and enables the cgroup
/// controllers for containers.
pub fn mount_filesystems() -> Result<(), ContainerError> {
    mount_once("sysfs", "/sys", "sysfs", NODEV)?;
    mount_once("devtmpfs", "/dev", "devtmpfs", libc::MS_NOSUID)?;
    mount_once("cgroup2", CGROUP_ROOT, "cgroup2", NODEV)?;
    mount_once("tmpfs", "/run", "tmpfs", libc::MS_NOSUID | libc::MS_NODEV)?;
    mount_once("tmpfs", "/tmp", "tmpfs", libc::MS_NOSUID | libc::MS_NODEV)?;
    std::fs::create_dir_all(container::CONTAINERS_DIR).map_err(|source| ContainerError::Io {
        what: "creating the containers directory".into(),
        source,
    })?;
    let controllers = std::fs::read_to_string(Path::new(CGROUP_ROOT).join("cgroup.controllers"))
        .unwrap_or_default();
    let enable: Vec<String> = controllers
        .split_whitespace()
        .filter(|c| matches!(*c, "cpu" | "memory" | "pids" | "cpuset"))
        .map(|c| format!("+{c}"))
        .collect();
    if !enable.is_empty() {
        let _ =
            std::fs::write(Path::new(CGROUP_ROOT).join("cgroup.subtree_control"), enable.join(" "));
    }
    Ok(())
}

/// Makes PID 1 the leader of a session of its own, so that the console can be the session's
/// terminal while a console shell runs (see `process::spawn`).
pub fn own_session() {
    // SAFETY: setsid takes no arguments and touches no memory.
    if unsafe { libc::setsid() } < 0 {
        tracing::warn!("setsid: {}", std::io::Error::last_os_error());
    }
}

/// Loopback up, and eth0 configured when the command line says how.
pub fn network(cmdline: &Cmdline) {
    if let Err(e) = network::loopback_up() {
        tracing::warn!("bringing up lo: {e}");
    }
    match InterfaceConfig::from_cmdline(cmdline) {
        Some(Ok(cfg)) => match network::configure(&cfg) {
            Ok(()) => tracing::info!("{} is {}/{}", cfg.name, cfg.address, cfg.prefix),
            Err(e) => tracing::warn!("{e}"),
        },
        Some(Err(e)) => tracing::warn!("kernel command line: {e}"),
        None => {}
    }
}

/// The guest's host name, from `ringfence.hostname=` (a pod's name).
pub fn hostname(cmdline: &Cmdline) {
    let Some(name) = cmdline.value("ringfence.hostname") else { return };
    // SAFETY: the pointer and length describe `name`'s bytes for the duration of the call.
    if unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) } != 0 {
        tracing::warn!("sethostname {name:?}: {}", std::io::Error::last_os_error());
    }
}

/// Mounts the directory the host shares as `ringfence.share=TAG` (virtio-fs) at
/// [`container::SHARED_DIR`], where containers' images and volumes come from.
pub fn shared_directory(cmdline: &Cmdline) -> Result<(), ContainerError> {
    let Some(tag) = cmdline.value("ringfence.share") else { return Ok(()) };
    std::fs::create_dir_all(container::SHARED_DIR).map_err(|source| ContainerError::Io {
        what: format!("creating {}", container::SHARED_DIR),
        source,
    })?;
    container::mount(tag, Path::new(container::SHARED_DIR), "virtiofs", libc::MS_NOSUID, "")?;
    tracing::info!(tag, "the host's shared directory is at {}", container::SHARED_DIR);
    Ok(())
}
