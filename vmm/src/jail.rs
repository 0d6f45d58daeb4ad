//! `--jail`, as Firecracker's jailer does it: the VMM process ends up alone in new mount and
//! PID namespaces, with a root holding only what it needs (its kernel files and /dev/kvm),
//! without the descriptors it inherited, as an unprivileged user.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::VmmError;

pub struct JailConfig {
    /// The directory that becomes `/` (created; removed by the caller when done).
    pub root: PathBuf,
    pub uid: u32,
    pub gid: u32,
    /// Files put in (hard-linked, or copied across file systems), each to `/<name>` inside
    /// (returned in the same order).
    pub files: Vec<PathBuf>,
    /// Disk images (and the sockets of shared directories' daemons) bind-mounted in, each to
    /// `/<name>` inside, so writes reach the original (the jailed user must be allowed to
    /// open them, as with Firecracker's jailer).
    pub disks: Vec<PathBuf>,
    /// Make /dev/net/tun, for network interfaces (their taps must exist beforehand, owned by
    /// the jailed user, as with Firecracker's jailer).
    pub tun: bool,
    /// Cgroup limits for the VMM (see [`crate::jail_cgroup`]).
    pub cgroups: Vec<crate::jail_cgroup::Limit>,
    /// Descriptors to keep open (e.g. an API socket bound beforehand).
    pub keep_fds: Vec<i32>,
}

fn check(r: libc::c_int, what: &str) -> Result<(), VmmError> {
    if r < 0 {
        let e = std::io::Error::last_os_error();
        return Err(VmmError::Config(format!("jail: {what}: {e}")));
    }
    Ok(())
}

fn cstr(p: &Path) -> Result<CString, VmmError> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| VmmError::Config("NUL in a path".into()))
}

/// Closes every descriptor above stderr except `keep`.
fn close_inherited(keep: &[i32]) {
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2 && !keep.contains(fd))
        .collect();
    for fd in fds {
        // SAFETY: closing descriptors this process does not use (the directory iterator's own
        // descriptor is already closed when the list is complete).
        unsafe { libc::close(fd) };
    }
}

/// Builds the jail and enters it. Returns in the process that runs the VMM (PID 1 of the new
/// namespace) with the in-jail paths of `files` and of `disks`; the process that called it
/// waits for that one, forwards SIGTERM/SIGINT to it, and exits with its status (it never
/// returns).
pub fn enter(config: &JailConfig) -> Result<(Vec<PathBuf>, Vec<PathBuf>), VmmError> {
    close_inherited(&config.keep_fds);
    let root = &config.root;
    std::fs::create_dir_all(root.join("dev"))?;
    let mut inside = Vec::new();
    for f in &config.files {
        let name = f
            .file_name()
            .ok_or_else(|| VmmError::Config(format!("{} has no file name", f.display())))?;
        // A hard link where the file system allows (a kernel and initramfs are megabytes, a
        // copy per machine), else a copy.
        let at = root.join(name);
        let _ = std::fs::remove_file(&at);
        if std::fs::hard_link(f, &at).is_err() {
            std::fs::copy(f, &at)
                .map_err(|e| VmmError::Config(format!("jail: copying {}: {e}", f.display())))?;
        }
        inside.push(Path::new("/").join(name));
    }
    let mut disks = Vec::new();
    for d in &config.disks {
        let name = d
            .file_name()
            .ok_or_else(|| VmmError::Config(format!("{} has no file name", d.display())))?;
        let at = root.join(name);
        let taken = inside.iter().chain(disks.iter().map(|(_, at): &(PathBuf, PathBuf)| at));
        if taken.filter_map(|p| p.file_name()).any(|n| n == name) {
            return Err(VmmError::Config(format!("jail: two files named {}", at.display())));
        }
        std::fs::File::create(&at)?;
        disks.push((d.clone(), at));
    }
    let kvm = root.join("dev/kvm");
    let _ = std::fs::remove_file(&kvm);
    // SAFETY: mknod/chown on paths we own, from C strings; results checked.
    unsafe {
        check(
            libc::mknod(cstr(&kvm)?.as_ptr(), libc::S_IFCHR | 0o660, libc::makedev(10, 232)),
            "mknod /dev/kvm",
        )?;
        check(libc::chown(cstr(&kvm)?.as_ptr(), config.uid, config.gid), "chown /dev/kvm")?;
        if config.tun {
            std::fs::create_dir_all(root.join("dev/net"))?;
            let tun = cstr(&root.join("dev/net/tun"))?;
            libc::unlink(tun.as_ptr());
            check(
                libc::mknod(tun.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(10, 200)),
                "mknod /dev/net/tun",
            )?;
            // mknod's mode passes through the umask; the jailed user must open it read-write.
            check(libc::chmod(tun.as_ptr(), 0o666), "chmod /dev/net/tun")?;
        }
        check(libc::chown(cstr(root)?.as_ptr(), 0, config.gid), "chown the root")?;
        // The VMM's group may create its API socket at the root.
        check(libc::chmod(cstr(root)?.as_ptr(), 0o770), "chmod the root")?;
        check(libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWPID), "unshare")?;
    }
    let id = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "jail".into());
    let cgroups =
        crate::jail_cgroup::create(&format!("{id}-{}", std::process::id()), &config.cgroups)?;
    let removal = crate::jail_cgroup::Removal::prepare(&cgroups)?;
    // SAFETY: still single-threaded; the child continues with a copy of this state.
    let pid = unsafe { libc::fork() };
    check(pid, "fork")?;
    if pid > 0 {
        supervise(pid, &removal);
    }
    // The VMM goes when its supervisor goes, however that ends (a SIGKILL to the process its
    // starter knows must not leave a machine running). The supervisor is single-threaded, so
    // "the parent thread" is the whole process.
    // SAFETY: prctl has no memory effects.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    // Those descriptors lead outside the jail.
    drop(removal);
    // The VMM joins its cgroups before anything of the guest runs.
    if let Err(e) = crate::jail_cgroup::join(&cgroups) {
        eprintln!("ringfence-vmm: {e}");
        // SAFETY: leaving the child without running any destructors of the parent's state.
        unsafe { libc::_exit(1) };
    }
    // The VMM: PID 1 of its namespace. Make the new root its `/`.
    let old = root.join(".old-root");
    std::fs::create_dir_all(&old)?;
    // SAFETY: mount-namespace-private operations on our own jail directory; checked.
    unsafe {
        check(
            libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ),
            "make / private",
        )?;
        check(
            libc::mount(
                cstr(root)?.as_ptr(),
                cstr(root)?.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND | libc::MS_REC,
                std::ptr::null(),
            ),
            "bind the root",
        )?;
        for (host, at) in &disks {
            check(
                libc::mount(
                    cstr(host)?.as_ptr(),
                    cstr(at)?.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                ),
                "bind a disk",
            )?;
        }
        let pivoted =
            libc::syscall(libc::SYS_pivot_root, cstr(root)?.as_ptr(), cstr(&old)?.as_ptr());
        if pivoted == 0 {
            check(libc::chdir(c"/".as_ptr()), "chdir /")?;
            check(libc::umount2(c"/.old-root".as_ptr(), libc::MNT_DETACH), "unmount the old root")?;
        } else if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
            // The host runs from its initial ramfs, which cannot be pivoted away from (as in
            // the nested-SVM lane's outer VM): move the jail over `/` and chroot into it, as
            // switch_root does. The old root lies under that mount, out of reach of an
            // unprivileged process without CAP_SYS_CHROOT.
            check(libc::chdir(cstr(root)?.as_ptr()), "chdir into the jail")?;
            check(
                libc::mount(
                    c".".as_ptr(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_MOVE,
                    std::ptr::null(),
                ),
                "move the jail over /",
            )?;
            check(libc::chroot(c".".as_ptr()), "chroot into the jail")?;
            check(libc::chdir(c"/".as_ptr()), "chdir /")?;
        } else {
            check(-1, "pivot_root")?;
        }
    }
    let _ = std::fs::remove_dir("/.old-root");
    // SAFETY: dropping privileges: groups, then gid, then uid; checked.
    unsafe {
        check(libc::setgroups(0, std::ptr::null()), "setgroups")?;
        check(libc::setgid(config.gid), "setgid")?;
        check(libc::setuid(config.uid), "setuid")?;
        // Changing credentials cleared the parent-death signal set after the fork: again.
        check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL), "parent-death signal")?;
        check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no new privileges")?;
    }
    let disks =
        disks.iter().filter_map(|(_, at)| at.file_name().map(|n| Path::new("/").join(n))).collect();
    Ok((inside, disks))
}

/// The outer process: forward termination signals, reap the VMM, exit with its status.
fn supervise(child: libc::pid_t, cgroups: &crate::jail_cgroup::Removal) -> ! {
    // SAFETY: blocking signals and waiting for them on this single-threaded process.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGTERM, libc::SIGINT, libc::SIGCHLD] {
            libc::sigaddset(&mut set, s);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        loop {
            let mut status = 0;
            if libc::waitpid(child, &mut status, libc::WNOHANG) == child {
                let code = if libc::WIFEXITED(status) {
                    libc::WEXITSTATUS(status)
                } else {
                    128 + libc::WTERMSIG(status)
                };
                cgroups.run();
                libc::_exit(code);
            }
            let mut sig = 0;
            if libc::sigwait(&set, &mut sig) == 0 && sig != libc::SIGCHLD {
                libc::kill(child, sig);
            }
        }
    }
}
