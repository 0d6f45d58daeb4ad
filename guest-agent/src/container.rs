//! Containers inside the guest: a read-only image (a block device, or a directory the host
//! shares over virtio-fs), a writable overlay layer on tmpfs with the files the host places
//! there, shared directories mounted in, /proc, /dev and /sys inside, and a cgroup for its
//! processes.

use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};

use crate::steps::Steps;

/// Where containers are assembled (on the tmpfs at /run).
pub const CONTAINERS_DIR: &str = "/run/ringfence/containers";
/// The cgroup v2 hierarchy the agent mounts.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// Where the host's shared directory (`ringfence.share=TAG`) is mounted.
pub const SHARED_DIR: &str = "/run/ringfence/shared";

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("container id {0:?}: use 1-64 letters, digits, '-', '_' or '.'")]
    BadId(String),
    #[error("device {0:?} is not a block device under /dev")]
    BadDevice(String),
    #[error("file system type {0:?}: ext4 or erofs")]
    BadFsType(String),
    #[error("{0:?} is not a directory under {SHARED_DIR}")]
    BadSharedDir(String),
    #[error("{0:?} is not an absolute path without '..'")]
    BadPath(String),
    #[error("give an image: a block device or a shared directory")]
    NoImage,
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

/// Where a container's read-only image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Image {
    /// A block device holding a file system (ext4 or erofs).
    Device { device: String, fstype: String },
    /// A directory under [`SHARED_DIR`].
    Shared(String),
}

/// A file placed in the writable layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub path: String,
    pub contents: Vec<u8>,
    pub mode: u32,
}

/// A shared directory mounted into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub source: String,
    pub destination: String,
    pub read_only: bool,
}

/// What a container's file system hides or keeps read-only, and its memory limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub readonly_rootfs: bool,
    pub masked_paths: Vec<String>,
    pub readonly_paths: Vec<String>,
    /// memory.max of its cgroup; `None`: no limit.
    pub memory_limit_bytes: Option<u64>,
    /// Its processes run in a PID namespace of its own, whose first process mounts the /proc
    /// that shows it, with the masks under /proc ([`crate::process`]): the guest's /proc is
    /// not mounted here, nor masked (each mount costs milliseconds where guest kernel code is
    /// emulated, and would be covered at once).
    pub own_proc: bool,
}

/// Whether `path` is /proc or under it.
fn under_proc(path: &str) -> bool {
    path == "/proc" || path.starts_with("/proc/")
}

/// Which PID namespace a container's processes run in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PidMode {
    /// The guest's, shared.
    #[default]
    Pod,
    /// Its own, made by its first process.
    Container,
    /// The one of another container (by id).
    Target(String),
}

/// A mounted container.
#[derive(Debug, Clone)]
pub struct Container {
    pub id: String,
    pub dir: PathBuf,
    /// Where its mounts landed, innermost last (unmounted in reverse).
    pub mounted: Vec<PathBuf>,
    pub pid_mode: PidMode,
    /// Its PID namespace once its first process made or joined it (`None` in the guest's).
    pub pid_ns: Option<std::sync::Arc<std::os::fd::OwnedFd>>,
    /// What it was made with (a new namespace's /proc gets its masks again).
    pub policy: Policy,
    /// How long making it took, step by step.
    pub steps: Steps,
}

impl Container {
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
    pub fn cgroup(&self) -> PathBuf {
        Path::new(CGROUP_ROOT).join(&self.id)
    }

    /// How many of its processes the out-of-memory killer has killed so far.
    pub fn oom_kills(&self) -> u64 {
        let events =
            std::fs::read_to_string(self.cgroup().join("memory.events")).unwrap_or_default();
        events.lines().find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok()).unwrap_or(0)
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

/// A plain absolute path: no `..`, no empty or `.` components.
fn plain_absolute(p: &str) -> bool {
    p.starts_with('/') && !p.contains('\0') && p.split('/').skip(1).all(|c| c != ".." && c != ".")
}

/// `path` under [`SHARED_DIR`], an existing directory reached without symlinks.
fn shared_dir(path: &str) -> Result<PathBuf, ContainerError> {
    let bad = || ContainerError::BadSharedDir(path.to_owned());
    let rel = path.strip_prefix(SHARED_DIR).filter(|r| r.starts_with('/')).ok_or_else(bad)?;
    if !plain_absolute(rel) {
        return Err(bad());
    }
    let mut at = PathBuf::from(SHARED_DIR);
    for c in rel.split('/').filter(|c| !c.is_empty()) {
        at.push(c);
        let meta = std::fs::symlink_metadata(&at).map_err(|_| bad())?;
        if meta.file_type().is_symlink() {
            return Err(bad());
        }
    }
    if !at.is_dir() {
        return Err(bad());
    }
    Ok(at)
}

fn check_device(device: &str, fstype: &str) -> Result<String, ContainerError> {
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
    Ok(fstype.to_owned())
}

/// Makes container `id` over `image`, with `files` in its writable layer and `mounts` in it.
/// Everything is checked before anything is made.
pub fn create(
    id: &str,
    image: &Image,
    files: &[File],
    mounts: &[Mount],
    policy: &Policy,
) -> Result<Container, ContainerError> {
    let mut steps = Steps::start();
    check_id(id)?;
    let image = match image {
        Image::Device { device, fstype } => {
            Image::Device { device: device.clone(), fstype: check_device(device, fstype)? }
        }
        Image::Shared(dir) => {
            shared_dir(dir)?;
            image.clone()
        }
    };
    for f in files {
        if !plain_absolute(&f.path) || f.path == "/" {
            return Err(ContainerError::BadPath(f.path.clone()));
        }
    }
    for m in mounts {
        shared_dir(&m.source)?;
        if !plain_absolute(&m.destination) || m.destination == "/" {
            return Err(ContainerError::BadPath(m.destination.clone()));
        }
    }
    check_policy(policy)?;
    steps.lap("check");
    let dir = Path::new(CONTAINERS_DIR).join(id);
    std::fs::create_dir(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
    let mut c = Container {
        id: id.to_owned(),
        dir,
        mounted: Vec::new(),
        pid_mode: PidMode::Pod,
        pid_ns: None,
        policy: policy.clone(),
        steps,
    };
    if let Err(e) = assemble(&mut c, &image, files, mounts, policy) {
        teardown(&c);
        let _ = std::fs::remove_dir_all(&c.dir);
        return Err(e);
    }
    Ok(c)
}

fn check_policy(policy: &Policy) -> Result<(), ContainerError> {
    for p in policy.masked_paths.iter().chain(&policy.readonly_paths) {
        if !plain_absolute(p) || p == "/" {
            return Err(ContainerError::BadPath(p.clone()));
        }
    }
    Ok(())
}

/// Creates `rel`'s directories under `root` one at a time, refusing any that is a symlink
/// (a container image could aim one anywhere in the guest).
fn make_dirs_under(root: &Path, rel: &str) -> Result<PathBuf, ContainerError> {
    let mut at = root.to_owned();
    for c in rel.split('/').filter(|c| !c.is_empty()) {
        at.push(c);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(ContainerError::BadPath(rel.to_owned()));
            }
            Ok(_) => {}
            Err(_) => {
                std::fs::create_dir(&at).map_err(io_err(format!("creating {}", at.display())))?
            }
        }
    }
    Ok(at)
}

/// Places `f` in the writable layer `upper` before the overlay is mounted over `lower`, as if
/// written through it: its directories as the image has them (never through a symlink, which
/// an image could aim anywhere), a symlink of the image at its name replaced. Written there
/// rather than through the overlay, it costs no copy-up of the image's files and directories
/// (each a round of lookups and reads over virtio-fs, tens of milliseconds where guest kernel
/// code is emulated).
fn place(upper: &Path, lower: &Path, f: &File) -> Result<(), ContainerError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let bad = || ContainerError::BadPath(f.path.clone());
    let (parent, name) = f.path.rsplit_once('/').unwrap_or(("", &f.path));
    let (mut up, mut low) = (upper.to_owned(), lower.to_owned());
    for c in parent.split('/').filter(|c| !c.is_empty()) {
        up.push(c);
        low.push(c);
        let image = std::fs::symlink_metadata(&low).ok();
        if image.as_ref().is_some_and(|m| !m.is_dir()) {
            return Err(bad());
        }
        if up.is_dir() {
            continue;
        }
        std::fs::create_dir(&up).map_err(io_err(format!("creating {}", up.display())))?;
        // The image's directory keeps its owner and mode, as a copy-up would.
        if let Some(m) = image {
            std::os::unix::fs::lchown(&up, Some(m.uid()), Some(m.gid()))
                .map_err(io_err(format!("chown {}", up.display())))?;
            std::fs::set_permissions(&up, std::fs::Permissions::from_mode(m.mode() & 0o7777))
                .map_err(io_err(format!("chmod {}", up.display())))?;
        }
    }
    if std::fs::symlink_metadata(low.join(name)).is_ok_and(|m| m.is_dir()) {
        return Err(bad());
    }
    let at = up.join(name);
    std::fs::write(&at, &f.contents).map_err(io_err(format!("writing {}", at.display())))?;
    let mode = if f.mode == 0 { 0o644 } else { f.mode & 0o7777 };
    std::fs::set_permissions(&at, std::fs::Permissions::from_mode(mode))
        .map_err(io_err(format!("chmod {}", at.display())))
}

fn assemble(
    c: &mut Container,
    image: &Image,
    files: &[File],
    mounts: &[Mount],
    policy: &Policy,
) -> Result<(), ContainerError> {
    for d in ["lower", "upper", "work", "rootfs"] {
        let p = c.dir.join(d);
        std::fs::create_dir(&p).map_err(io_err(format!("creating {}", p.display())))?;
    }
    let lower = match image {
        Image::Device { device, fstype } => {
            mount(device, &c.dir.join("lower"), fstype, libc::MS_RDONLY, "")?;
            c.dir.join("lower")
        }
        Image::Shared(dir) => PathBuf::from(dir),
    };
    let layers = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        c.dir.join("upper").display(),
        c.dir.join("work").display()
    );
    let root = c.rootfs();
    c.steps.lap("directories");
    for f in files {
        place(&c.dir.join("upper"), &lower, f)?;
    }
    c.steps.lap("files");
    mount("overlay", &root, "overlay", 0, &layers)?;
    c.steps.lap("overlay");
    for (dir, fs, flags) in [
        ("proc", "proc", libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC),
        ("sys", "sysfs", libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_RDONLY),
        ("dev", "devtmpfs", libc::MS_NOSUID),
        ("tmp", "tmpfs", libc::MS_NOSUID | libc::MS_NODEV),
    ] {
        // /tmp is part of the root, as with other runtimes: read-only with it.
        if dir == "tmp" && policy.readonly_rootfs {
            continue;
        }
        let p = root.join(dir);
        std::fs::create_dir_all(&p).map_err(io_err(format!("creating {}", p.display())))?;
        if dir == "proc" && policy.own_proc {
            continue;
        }
        mount(fs, &p, fs, flags, "")?;
        c.steps.lap(dir);
    }
    // The agent's terminals at the same path inside: a process on one finds it (tty, ttyname).
    if Path::new("/dev/pts/ptmx").exists() {
        let pts = root.join("dev/pts");
        std::fs::create_dir_all(&pts).map_err(io_err(format!("creating {}", pts.display())))?;
        mount("/dev/pts", &pts, "", libc::MS_BIND, "")?;
    }
    for m in mounts {
        let at = make_dirs_under(&root, &m.destination)?;
        mount(&m.source, &at, "", libc::MS_BIND | libc::MS_REC, "")?;
        c.mounted.push(at.clone());
        if m.read_only {
            let flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY;
            mount("none", &at, "", flags, "")?;
        }
    }
    c.steps.lap("volumes");
    restrict(c, policy)?;
    c.steps.lap("masks");
    std::fs::create_dir(c.cgroup())
        .map_err(io_err(format!("creating {}", c.cgroup().display())))?;
    if let Some(limit) = policy.memory_limit_bytes {
        let max = c.cgroup().join("memory.max");
        std::fs::write(&max, limit.to_string()).map_err(io_err(format!(
            "writing {} to {}",
            limit,
            max.display()
        )))?;
    }
    c.steps.lap("cgroup");
    Ok(())
}

/// `rel` under `root` when it exists and no component of it is a symlink (a container image
/// could aim one anywhere in the guest); `None` otherwise.
fn existing_under(root: &Path, rel: &str) -> Option<PathBuf> {
    let mut at = root.to_owned();
    for c in rel.split('/').filter(|c| !c.is_empty()) {
        at.push(c);
        if std::fs::symlink_metadata(&at).ok()?.file_type().is_symlink() {
            return None;
        }
    }
    Some(at)
}

/// Hides the masked paths, makes the read-only ones so, then the root itself (last: the
/// steps before write under it).
fn restrict(c: &mut Container, policy: &Policy) -> Result<(), ContainerError> {
    let root = c.rootfs();
    let ro_remount = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY;
    let here = |p: &&String| !(policy.own_proc && under_proc(p));
    for p in policy.masked_paths.iter().filter(here) {
        let Some(at) = existing_under(&root, p) else { continue };
        if at.is_dir() {
            mount(
                "tmpfs",
                &at,
                "tmpfs",
                libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
                "size=0",
            )?;
        } else {
            mount("/dev/null", &at, "", libc::MS_BIND, "")?;
        }
        c.mounted.push(at);
    }
    for p in policy.readonly_paths.iter().filter(here) {
        let Some(at) = existing_under(&root, p) else { continue };
        let path = at.display().to_string();
        mount(&path, &at, "", libc::MS_BIND | libc::MS_REC, "")?;
        c.mounted.push(at.clone());
        mount("none", &at, "", ro_remount, "")?;
    }
    if policy.readonly_rootfs {
        mount("none", &root, "", ro_remount, "")?;
    }
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
    for m in c.mounted.iter().rev() {
        umount(m);
    }
    let root = c.rootfs();
    for d in ["tmp", "dev/pts", "dev", "sys", "proc"] {
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

    fn device(d: &str, t: &str) -> Image {
        Image::Device { device: d.into(), fstype: t.into() }
    }

    #[test]
    fn bad_devices_and_types_are_refused_before_anything_is_made() {
        let none: (&[File], &[Mount]) = (&[], &[]);
        let make = |i: &Image| create("x", i, none.0, none.1, &Policy::default());
        assert!(matches!(make(&device("/etc/passwd", "ext4")), Err(ContainerError::BadDevice(_))));
        assert!(matches!(make(&device("/dev/null", "ext4")), Err(ContainerError::BadDevice(_))));
        assert!(matches!(make(&device("/dev/vda", "ntfs")), Err(ContainerError::BadFsType(_))));
        assert!(!Path::new(CONTAINERS_DIR).join("x").exists());
    }

    #[test]
    fn images_files_and_mounts_outside_their_places_are_refused() {
        let shared = |p: &str| Image::Shared(p.into());
        for bad in ["/etc", "/run/ringfence/shared/../x", "/run/ringfence/sharedx", "relative"] {
            assert!(
                matches!(
                    create("x", &shared(bad), &[], &[], &Policy::default()),
                    Err(ContainerError::BadSharedDir(_))
                ),
                "{bad}"
            );
        }
        assert!(shared_dir("/run/ringfence/shared/a/../../../etc").is_err());
        for bad in ["etc/hosts", "/etc/../../x", "/", "/a/./b"] {
            assert!(!plain_absolute(bad) || bad == "/", "{bad}");
        }
        let m = Mount { source: "/etc".into(), destination: "/data".into(), read_only: false };
        assert!(matches!(
            create("x", &device("/dev/null", ""), &[], &[m], &Policy::default()),
            Err(ContainerError::BadDevice(_))
        ));
    }

    #[test]
    fn masked_and_read_only_paths_must_be_plain_absolute_paths() {
        for bad in ["proc/kcore", "/proc/../etc", "/", "/a/./b"] {
            let policy = Policy { masked_paths: vec![bad.into()], ..Default::default() };
            assert!(matches!(check_policy(&policy), Err(ContainerError::BadPath(_))), "{bad}");
            let policy = Policy { readonly_paths: vec![bad.into()], ..Default::default() };
            assert!(matches!(check_policy(&policy), Err(ContainerError::BadPath(_))), "{bad}");
        }
        let fine = Policy { masked_paths: vec!["/proc/kcore".into()], ..Default::default() };
        assert!(check_policy(&fine).is_ok());
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("proc")).unwrap();
        assert_eq!(existing_under(root.path(), "/proc/kcore"), None, "a symlink is not followed");
        std::fs::create_dir(root.path().join("sys")).unwrap();
        assert_eq!(existing_under(root.path(), "/sys"), Some(root.path().join("sys")));
        assert_eq!(existing_under(root.path(), "/missing"), None);
    }

    #[test]
    fn files_are_placed_without_following_symlinks_out() {
        use std::os::unix::fs::PermissionsExt;
        let (upper, lower) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (up, low) = (upper.path(), lower.path());
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), low.join("etc")).unwrap();
        let f = File { path: "/etc/hosts".into(), contents: b"x".to_vec(), mode: 0o644 };
        assert!(matches!(place(up, low, &f), Err(ContainerError::BadPath(_))));
        assert!(!outside.path().join("hosts").exists() && !up.join("etc").exists());
        // The image's directories keep their mode; a symlink at the name is replaced; a
        // directory there is refused.
        std::fs::create_dir_all(low.join("srv/app")).unwrap();
        std::fs::set_permissions(low.join("srv"), std::fs::Permissions::from_mode(0o750)).unwrap();
        std::os::unix::fs::symlink("/elsewhere", low.join("srv/app/config")).unwrap();
        let f = File { path: "/srv/app/config".into(), contents: b"hello".to_vec(), mode: 0o600 };
        place(up, low, &f).unwrap();
        assert_eq!(std::fs::read(up.join("srv/app/config")).unwrap(), b"hello");
        let mode = std::fs::metadata(up.join("srv")).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o750);
        let f = File { path: "/srv/app".into(), contents: b"x".to_vec(), mode: 0 };
        assert!(matches!(place(up, low, &f), Err(ContainerError::BadPath(_))));
    }
}
