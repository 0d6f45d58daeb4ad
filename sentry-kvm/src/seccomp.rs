//! Seccomp filters for the Sentry and the Gofer, kept as data: which host syscalls each process
//! role may make once it is set up. Anything else fails with EPERM.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("building the seccomp filter: {0}")]
    Build(String),
    #[error("installing the seccomp filter: {0}")]
    Install(String),
}

/// A syscall and the conditions its arguments must meet (any one rule), or none.
type Allowed = (i64, Vec<Vec<(u8, u64, u64)>>);

fn any(nr: i64) -> Allowed {
    (nr, Vec::new())
}

/// Allowed when `(arg & mask) == value`.
fn masked(nr: i64, arg: u8, mask: u64, value: u64) -> Allowed {
    (nr, vec![vec![(arg, mask, value)]])
}

/// Allowed when `arg` equals one of `values`.
fn one_of(nr: i64, arg: u8, values: &[u64]) -> Allowed {
    (nr, values.iter().map(|v| vec![(arg, u64::MAX, *v)]).collect())
}

/// What the Sentry needs after start-up: KVM, its guest memory, threads, the Gofer channel,
/// host stdio and the sandbox's own host sockets. No open, exec or filesystem calls.
fn sentry_allowed() -> Vec<Allowed> {
    use libc::*;
    vec![
        any(SYS_ioctl),
        any(SYS_read),
        any(SYS_write),
        any(SYS_pread64),
        any(SYS_pwrite64),
        any(SYS_readv),
        any(SYS_writev),
        any(SYS_close),
        any(SYS_fstat),
        masked(SYS_newfstatat, 3, AT_EMPTY_PATH as u64, AT_EMPTY_PATH as u64),
        masked(SYS_statx, 2, AT_EMPTY_PATH as u64, AT_EMPTY_PATH as u64),
        any(SYS_fcntl),
        any(SYS_fallocate),
        // Stdio that is a regular file moves the host's file position.
        any(SYS_lseek),
        // On descriptors of volume files the Gofer handed over.
        any(SYS_ftruncate),
        any(SYS_fsync),
        any(SYS_fdatasync),
        any(SYS_mmap),
        any(SYS_munmap),
        any(SYS_mprotect),
        any(SYS_mremap),
        any(SYS_madvise),
        any(SYS_brk),
        any(SYS_futex),
        any(SYS_poll),
        any(SYS_ppoll),
        // The host notifier: readiness of the sandbox's host sockets.
        any(SYS_epoll_create1),
        any(SYS_epoll_ctl),
        any(SYS_epoll_wait),
        any(SYS_epoll_pwait),
        // Threads only: new processes are never created by the Sentry.
        masked(SYS_clone, 0, CLONE_THREAD as u64, CLONE_THREAD as u64),
        any(SYS_set_robust_list),
        any(SYS_rseq),
        any(SYS_sched_getaffinity),
        any(SYS_sched_yield),
        one_of(SYS_prctl, 0, &[PR_SET_NAME as u64, PR_GET_NAME as u64, PR_SET_NO_NEW_PRIVS as u64]),
        // Adding filters only ever narrows what is allowed.
        masked(SYS_seccomp, 0, u64::MAX, SECCOMP_SET_MODE_FILTER as u64),
        any(SYS_exit),
        any(SYS_exit_group),
        any(SYS_gettid),
        any(SYS_getpid),
        any(SYS_tgkill),
        any(SYS_rt_sigaction),
        any(SYS_rt_sigprocmask),
        any(SYS_rt_sigreturn),
        any(SYS_rt_sigtimedwait),
        any(SYS_sigaltstack),
        any(SYS_clock_gettime),
        any(SYS_clock_nanosleep),
        any(SYS_nanosleep),
        any(SYS_getrandom),
        any(SYS_sendmsg),
        any(SYS_recvmsg),
        // Application AF_INET/AF_INET6 sockets, in the sandbox's network namespace.
        one_of(SYS_socket, 0, &[AF_INET as u64, AF_INET6 as u64]),
        any(SYS_bind),
        any(SYS_connect),
        any(SYS_listen),
        any(SYS_accept4),
        any(SYS_sendto),
        any(SYS_recvfrom),
        any(SYS_shutdown),
        any(SYS_getsockname),
        any(SYS_getpeername),
        any(SYS_setsockopt),
        any(SYS_getsockopt),
    ]
}

/// What the Gofer needs to serve its (chrooted) root: walks and reads that never follow
/// symlinks, and its channel.
fn gofer_allowed() -> Vec<Allowed> {
    use libc::*;
    vec![
        masked(SYS_openat, 2, O_NOFOLLOW as u64, O_NOFOLLOW as u64),
        // A descriptor's own attributes, or a name's without following it (a listing's
        // attributes; no more than openat with O_NOFOLLOW then fstat would give).
        (
            SYS_newfstatat,
            vec![
                vec![(3, AT_EMPTY_PATH as u64, AT_EMPTY_PATH as u64)],
                vec![(3, AT_SYMLINK_NOFOLLOW as u64, AT_SYMLINK_NOFOLLOW as u64)],
            ],
        ),
        any(SYS_fstat),
        // statfs of a volume's filesystem, on a descriptor the Gofer holds.
        any(SYS_fstatfs),
        any(SYS_getdents64),
        any(SYS_readlinkat),
        any(SYS_close),
        any(SYS_recvmsg),
        any(SYS_sendmsg),
        any(SYS_write),
        any(SYS_mmap),
        any(SYS_munmap),
        any(SYS_mremap),
        any(SYS_madvise),
        any(SYS_brk),
        any(SYS_futex),
        any(SYS_rt_sigreturn),
        any(SYS_rt_sigprocmask),
        any(SYS_sigaltstack),
        any(SYS_exit),
        any(SYS_exit_group),
    ]
}

fn compile(allowed: Vec<Allowed>) -> Result<BpfProgram, SeccompError> {
    let b = |e: seccompiler::BackendError| SeccompError::Build(e.to_string());
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for (nr, alternatives) in allowed {
        let mut rs = Vec::new();
        for conds in alternatives {
            let cs = conds
                .into_iter()
                .map(|(arg, mask, value)| {
                    let op = if mask == u64::MAX {
                        SeccompCmpOp::Eq
                    } else {
                        SeccompCmpOp::MaskedEq(mask)
                    };
                    SeccompCondition::new(arg, SeccompCmpArgLen::Qword, op, value)
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(b)?;
            rs.push(SeccompRule::new(cs).map_err(b)?);
        }
        // A syscall listed twice takes either list's alternatives (an unconditional one wins).
        match rules.get_mut(&nr) {
            Some(old) if old.is_empty() => {}
            Some(old) if !rs.is_empty() => old.extend(rs),
            _ => {
                rules.insert(nr, rs);
            }
        }
    }
    let arch = std::env::consts::ARCH.try_into().map_err(b)?;
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        arch,
    )
    .map_err(b)?;
    filter.try_into().map_err(b)
}

/// clone3 fails with ENOSYS so that libc falls back to clone, whose flags the main filter can
/// check. Installed after the main filter: the most recently installed filter's errno wins.
fn clone3_enosys() -> Result<BpfProgram, SeccompError> {
    let b = |e: seccompiler::BackendError| SeccompError::Build(e.to_string());
    let mut rules = BTreeMap::new();
    rules.insert(libc::SYS_clone3, Vec::new());
    let arch = std::env::consts::ARCH.try_into().map_err(b)?;
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .map_err(b)?;
    filter.try_into().map_err(b)
}

fn install_all_threads(filters: &[BpfProgram]) -> Result<(), SeccompError> {
    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS) has no memory effects.
    unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    for f in filters {
        seccompiler::apply_filter_all_threads(f)
            .map_err(|e| SeccompError::Install(e.to_string()))?;
    }
    Ok(())
}

/// What the systrap platform adds: stub processes (a fork-like clone only), their memory, and
/// what a stub does before its own filter confines it further (see platform/systrap).
fn systrap_allowed() -> Vec<Allowed> {
    use libc::*;
    vec![
        masked(SYS_clone, 0, u64::MAX, SIGCHLD as u64),
        any(SYS_memfd_create),
        any(SYS_close_range),
        one_of(SYS_arch_prctl, 0, &[0x1002, 0x1003]),
        one_of(SYS_prctl, 0, &[PR_SET_PDEATHSIG as u64]),
        any(SYS_wait4),
        any(SYS_waitid),
        // Stub threads follow the Sentry thread that drives them from CPU to CPU.
        any(SYS_sched_setaffinity),
        // Whether the host preempted a polling Sentry thread (`RUSAGE_THREAD` only).
        one_of(SYS_getrusage, 0, &[libc::RUSAGE_THREAD as u64]),
    ]
}

/// Confines every thread of the Sentry process (running application code on `platform`).
pub fn confine_sentry(platform: crate::platform::PlatformKind) -> Result<(), SeccompError> {
    let mut allowed = sentry_allowed();
    if platform == crate::platform::PlatformKind::Systrap {
        allowed.extend(systrap_allowed());
    }
    install_all_threads(&[compile(allowed)?, clone3_enosys()?])
}

/// Confines the (single-threaded) Gofer process.
pub fn confine_gofer(writable: bool) -> Result<(), SeccompError> {
    let mut allowed = gofer_allowed();
    if writable {
        use libc::*;
        for nr in [
            SYS_mkdirat,
            SYS_unlinkat,
            SYS_renameat,
            SYS_renameat2,
            SYS_symlinkat,
            SYS_fchmod,
            SYS_utimensat,
            SYS_ftruncate,
            SYS_fsync,
            SYS_fdatasync,
        ] {
            allowed.push(any(nr));
        }
    }
    install_all_threads(&[compile(allowed)?])
}
