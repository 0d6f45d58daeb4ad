//! The directory a microVM pod shares with its guest over virtio-fs: one per sandbox, served
//! by its own virtiofsd. Containers' images and volumes reach the guest as read-only or
//! read-write bind mounts made under it after the guest booted; the directory is a mount of
//! its own with shared propagation, so that the daemon (in a mount namespace of its own) sees
//! binds made after it started. In the guest it is `/run/ringfence/shared`.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::cri::CriError;
use crate::cri::handler::Launcher;
use crate::cri::mounts::{self, mounts_under, unmount};

/// The tag the guest mounts the share by.
pub const TAG: &str = "pod";
/// Where the guest agent mounts it.
pub const GUEST_DIR: &str = "/run/ringfence/shared";

/// Whether `/` is the initial ramfs, where virtiofsd's namespace sandbox cannot pivot_root
/// (the nested-SVM lane's outer VM runs from one); it then confines itself with chroot.
fn root_is_ramfs() -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines().any(|l| {
        let fields: Vec<&str> = l.split(' ').collect();
        let mount_point = fields.get(4).copied();
        let fstype = fields.iter().position(|f| *f == "-").and_then(|i| fields.get(i + 1));
        mount_point == Some("/") && matches!(fstype, Some(&"rootfs") | Some(&"ramfs"))
    })
}

/// A sandbox's shared directory and its daemon.
pub struct Share {
    dir: PathBuf,
    socket: PathBuf,
    daemon: Option<Child>,
}

impl Share {
    /// Makes `dir` a shared mount and starts `virtiofsd` on it, listening at `socket` (which
    /// the jailed VMM may connect to); returns once the socket is there.
    pub fn start(
        virtiofsd: &Launcher,
        dir: &Path,
        socket: &Path,
        log: &Path,
    ) -> Result<Share, CriError> {
        let err = |what: &str, e: io::Error| CriError::Sandbox(format!("{what}: {e}"));
        std::fs::create_dir_all(dir).map_err(|e| err("creating the shared directory", e))?;
        mounts::mount(dir, dir, libc::MS_BIND)
            .map_err(|e| err("binding the shared directory", e))?;
        let mut share = Share { dir: dir.to_owned(), socket: socket.to_owned(), daemon: None };
        mounts::mount(Path::new("none"), dir, libc::MS_SHARED)
            .map_err(|e| err("making the shared directory's mounts propagate", e))?;
        let sandbox = if root_is_ramfs() { "chroot" } else { "namespace" };
        let _ = std::fs::remove_file(socket);
        let mut cmd = virtiofsd.command();
        cmd.arg(format!("--socket-path={}", socket.display()))
            .arg("-o")
            .arg(format!("source={}", dir.display()))
            .args(["-o", "cache=auto", "-o", "announce_submounts", "-o", "log_level=warn"])
            .args(["-o", &format!("sandbox={sandbox}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).map_err(|e| err("creating the daemon's log", e))?);
        let child = cmd.spawn().map_err(|e| {
            err(&format!("starting virtiofsd ({})", virtiofsd.program.display()), e)
        })?;
        share.daemon = Some(child);
        let start = Instant::now();
        while !socket.exists() {
            if let Some(Ok(Some(status))) = share.daemon.as_mut().map(Child::try_wait) {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                return Err(CriError::Sandbox(format!(
                    "virtiofsd exited ({status}) before it listened: {}",
                    text.trim()
                )));
            }
            if start.elapsed() > Duration::from_secs(10) {
                return Err(CriError::Sandbox("virtiofsd did not listen within 10 s".into()));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // The jailed VMM runs as an unprivileged user; the socket is reachable only inside
        // this sandbox's directories.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o666))
            .map_err(|e| err("opening the daemon's socket to the VMM", e))?;
        Ok(share)
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The host path of `rel` in the share, and its path in the guest.
    pub fn place(&self, rel: &str) -> (PathBuf, String) {
        (self.dir.join(rel), format!("{GUEST_DIR}/{rel}"))
    }

    /// Removes what was bound under `rel` (a container's image and volumes).
    pub fn release(&self, rel: &str) {
        let at = self.dir.join(rel);
        for m in mounts_under(&at) {
            unmount(&m);
        }
        let _ = std::fs::remove_dir_all(&at);
    }

    /// Stops the daemon and unmounts everything (the guest is gone by then).
    pub fn stop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
        for m in mounts_under(&self.dir) {
            unmount(&m);
        }
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        self.stop();
    }
}
