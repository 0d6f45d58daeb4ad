//! What PID 1 sets up before serving: the pseudo file systems, cgroup v2 with its
//! controllers, loopback and the network named on the command line, the host name
//! (`ringfence.hostname=`) and the host's shared directory (`ringfence.share=TAG`, left for
//! Refresh with `ringfence.share_later=1`). Refresh reuses the last two after a restore.

use std::io;
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

/// Mounts /sys, /dev (and /dev/pts), the cgroup2 hierarchy, /run and /tmp, and enables the cgroup
/// controllers for containers.
pub fn mount_filesystems() -> Result<(), ContainerError> {
    mount_once("sysfs", "/sys", "sysfs", NODEV)?;
    mount_once("devtmpfs", "/dev", "devtmpfs", libc::MS_NOSUID)?;
    // Terminals of processes started with `terminal` (/dev/ptmx opens this instance).
    mount_once("devpts", "/dev/pts", "devpts", libc::MS_NOSUID | libc::MS_NOEXEC)?;
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

/// Loopback up, and eth0 configured when the command line says how, or only up
/// (`ringfence.link=up`: a template, whose clones are given their addresses).
pub fn network(cmdline: &Cmdline) {
    // A pod's address outlives its guest: the node's neighbours must learn this guest's MAC
    // at once, when the interface comes up or its MAC changes (a template's clones keep it).
    if let Err(e) = std::fs::write("/proc/sys/net/ipv4/conf/all/arp_notify", "1") {
        tracing::warn!("arp_notify: {e}");
    }
    if let Err(e) = network::loopback_up() {
        tracing::warn!("bringing up lo: {e}");
    }
    match InterfaceConfig::from_cmdline(cmdline) {
        Some(Ok(cfg)) => match network::configure(&cfg) {
            Ok(_) => tracing::info!("{} is {}/{}", cfg.name, cfg.address, cfg.prefix),
            Err(e) => tracing::warn!("{e}"),
        },
        Some(Err(e)) => tracing::warn!("kernel command line: {e}"),
        None if cmdline.value("ringfence.link") == Some("up") => {
            if let Err(e) = network::link_up("eth0") {
                tracing::warn!("bringing up eth0: {e}");
            }
        }
        None => {}
    }
}

/// A host name the guest takes (from `ringfence.hostname=` or Refresh): at most 64 bytes (the
/// kernel's limit), dot-separated labels of 1-63 ASCII letters, digits and '-', no label
/// starting or ending with '-' (RFC 1123; a pod's name passes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hostname(String);

#[derive(Debug, thiserror::Error)]
#[error(
    "host name {0:?}: 1-64 bytes of dot-separated labels (1-63 letters, digits or '-', not \
     first or last)"
)]
pub struct BadHostname(pub String);

impl Hostname {
    pub fn parse(name: &str) -> Result<Hostname, BadHostname> {
        let label_ok = |l: &str| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if name.is_empty() || name.len() > 64 || !name.split('.').all(label_ok) {
            return Err(BadHostname(name.to_owned()));
        }
        Ok(Hostname(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Makes it the guest's host name (sethostname).
    pub fn set(&self) -> io::Result<()> {
        // SAFETY: the pointer and length describe the name's bytes for the duration of the call.
        if unsafe { libc::sethostname(self.0.as_ptr().cast(), self.0.len()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// The guest's host name, from `ringfence.hostname=` (a pod's name).
pub fn hostname(cmdline: &Cmdline) {
    let Some(name) = cmdline.value("ringfence.hostname") else { return };
    match Hostname::parse(name) {
        Ok(h) => {
            if let Err(e) = h.set() {
                tracing::warn!("sethostname {name:?}: {e}");
            }
        }
        Err(e) => tracing::warn!("kernel command line: {e}"),
    }
}

/// The tag to mount at boot: `ringfence.share=TAG`, unless `ringfence.share_later=1` leaves it
/// for Refresh (a snapshot's template must not hold a session with a virtio-fs daemon that
/// its clones will not have).
fn share_at_boot(cmdline: &Cmdline) -> Option<&str> {
    let tag = cmdline.value("ringfence.share")?;
    if cmdline.value("ringfence.share_later") == Some("1") {
        tracing::info!(tag, "ringfence.share_later=1: the shared directory waits for Refresh");
        return None;
    }
    Some(tag)
}

/// Mounts the directory the host shares as `ringfence.share=TAG` (virtio-fs) at
/// [`container::SHARED_DIR`], where containers' images and volumes come from; not with
/// `ringfence.share_later=1`.
pub fn shared_directory(cmdline: &Cmdline) -> Result<(), ContainerError> {
    match share_at_boot(cmdline) {
        Some(tag) => mount_shared(tag),
        None => Ok(()),
    }
}

/// Mounts virtio-fs tag `tag` at [`container::SHARED_DIR`] (at boot, or by Refresh).
pub fn mount_shared(tag: &str) -> Result<(), ContainerError> {
    std::fs::create_dir_all(container::SHARED_DIR).map_err(|source| ContainerError::Io {
        what: format!("creating {}", container::SHARED_DIR),
        source,
    })?;
    container::mount(tag, Path::new(container::SHARED_DIR), "virtiofs", libc::MS_NOSUID, "")?;
    tracing::info!(tag, "the host's shared directory is at {}", container::SHARED_DIR);
    Ok(())
}

/// What is mounted at [`container::SHARED_DIR`] now, as (source, file system type): for
/// virtio-fs the source is the tag.
pub fn shared_mount() -> Option<(String, String)> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounted_at(&mounts, container::SHARED_DIR)
}

/// The topmost mount at `dir` in a mount table (`/proc/self/mounts`).
fn mounted_at(mounts: &str, dir: &str) -> Option<(String, String)> {
    mounts
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (source, target, fstype) = (w.next()?, w.next()?, w.next()?);
            (target == dir).then(|| (source.to_owned(), fstype.to_owned()))
        })
        .next_back()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_dns_labels_within_the_kernel_limit() {
        for good in ["web-0", "a", "Web-1.default.svc", "0abc", &"x".repeat(63)] {
            assert_eq!(Hostname::parse(good).unwrap().as_str(), good);
        }
        let long = format!("{}.{}", "a".repeat(32), "b".repeat(32));
        for bad in [
            "",
            "-web",
            "web-",
            "web..x",
            ".web",
            "web.",
            "web_0",
            "web 0",
            "web/0",
            "wéb",
            "web\0x",
            &"x".repeat(64),
            &long,
        ] {
            assert!(Hostname::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Hostname::parse(&long[..64]).is_ok());
    }

    #[test]
    fn share_later_leaves_the_share_for_refresh() {
        let c = Cmdline::new("console=ttyS0 ringfence.share=pod");
        assert_eq!(share_at_boot(&c), Some("pod"));
        let c = Cmdline::new("ringfence.share=pod ringfence.share_later=1");
        assert_eq!(share_at_boot(&c), None);
        let c = Cmdline::new("ringfence.share=pod ringfence.share_later=0");
        assert_eq!(share_at_boot(&c), Some("pod"));
        assert_eq!(share_at_boot(&Cmdline::new("ringfence.share_later=1")), None);
        assert_eq!(share_at_boot(&Cmdline::new("")), None);
    }

    #[test]
    fn the_topmost_mount_at_a_directory_is_found() {
        let table = "proc /proc proc rw,nosuid 0 0\n\
                     tmpfs /run tmpfs rw 0 0\n\
                     pod /run/ringfence/shared virtiofs rw,nosuid 0 0\n\
                     other /run/ringfence/shared/x virtiofs rw 0 0\n";
        let at = |d| mounted_at(table, d);
        assert_eq!(at("/run/ringfence/shared"), Some(("pod".into(), "virtiofs".into())));
        assert_eq!(at("/run/ringfence"), None);
        let stacked = format!("{table}tmpfs /run/ringfence/shared tmpfs rw 0 0\n");
        assert_eq!(
            mounted_at(&stacked, "/run/ringfence/shared"),
            Some(("tmpfs".into(), "tmpfs".into()))
        );
    }
}
