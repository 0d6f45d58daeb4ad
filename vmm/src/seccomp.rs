//! Per-thread seccomp filters (seccompiler): each VMM thread may make only the system calls
//! its job needs, installed before it touches guest input (a vCPU thread before its first
//! KVM_RUN). Anything else kills the process: a compromised VMM thread gets no second try.
//! No thread may open files or start programs once the machine runs.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadKind {
    /// Runs a vCPU: KVM_RUN and the devices it reaches.
    Vcpu,
    /// The event loop and machine teardown.
    Vmm,
    /// Serves the API socket.
    Api,
}

#[derive(Debug, thiserror::Error)]
#[error("seccomp: {0}")]
pub struct SeccompError(String);

/// What every thread does: memory, locks, signals, time, its own exit, stdio.
fn common() -> Vec<i64> {
    use libc::*;
    vec![
        SYS_read,
        SYS_write,
        SYS_writev,
        SYS_close,
        SYS_futex,
        SYS_mmap,
        SYS_munmap,
        SYS_mremap,
        SYS_madvise,
        SYS_brk,
        SYS_mprotect,
        SYS_rt_sigreturn,
        SYS_rt_sigprocmask,
        SYS_sigaltstack,
        SYS_clock_gettime,
        SYS_clock_nanosleep,
        SYS_nanosleep,
        SYS_sched_yield,
        SYS_exit,
        SYS_exit_group,
        SYS_getpid,
        SYS_gettid,
        SYS_fstat,
        SYS_statx,
        SYS_newfstatat,
    ]
}

/// What virtio devices do when notified: disk and tap I/O, entropy, their own epoll sets,
/// their rate limiters' timers.
/// Notifications reach devices on the VMM thread, or on a vCPU thread when the machine has
/// no in-kernel interrupt controller (tiny guests).
fn device_io() -> Vec<i64> {
    use libc::*;
    vec![
        SYS_preadv,
        SYS_readv,
        SYS_pwritev,
        SYS_pread64,
        SYS_pwrite64,
        SYS_fdatasync,
        SYS_fsync,
        SYS_fallocate,
        SYS_getrandom,
        SYS_timerfd_settime,
        // vsock: host sockets accepted, connected, read and written, peeked, shut down.
        SYS_accept4,
        SYS_socket,
        SYS_connect,
        SYS_sendto,
        SYS_recvfrom,
        SYS_shutdown,
        SYS_fcntl,
        // virtio-fs: vhost-user messages (with descriptors) to its daemon, and the eventfds
        // of each ring, made when the driver activates the device.
        SYS_sendmsg,
        SYS_recvmsg,
        SYS_eventfd2,
    ]
}

const IOC_WRITE: u64 = 1;
const IOC_READ: u64 = 2;

/// A KVM ioctl's number: direction, argument size, KVMIO (0xae) and its index.
fn kvm_ioctl(dir: u64, nr: u64, size: usize) -> u64 {
    (dir << 30) | ((size as u64) << 16) | (0xae << 8) | nr
}

/// Opening files for writing only (never reading one, never a directory walk for reads).
fn write_only_opens() -> Option<(i64, Vec<SeccompRule>)> {
    use libc::*;
    let write_only = SeccompCondition::new(
        2,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::MaskedEq(O_ACCMODE as u64),
        O_WRONLY as u64,
    );
    write_only.and_then(|c| SeccompRule::new(vec![c])).ok().map(|rule| (SYS_openat, vec![rule]))
}

fn allowed(kind: ThreadKind) -> Vec<(i64, Vec<SeccompRule>)> {
    use libc::*;
    let mut plain: Vec<i64> = common();
    let mut rules = Vec::new();
    match kind {
        ThreadKind::Vcpu => {
            // KVM_RUN (the vCPU was set up before), TUNSETOFFLOAD: a driver accepting
            // virtio-net features does so from a vCPU, by writing the device's registers; and
            // the registers, events, CR0 and FPU status of an instruction the emulator could
            // not run (crate::emulation).
            let ioctls = [
                0xae80u64,
                libc::TUNSETOFFLOAD,
                kvm_ioctl(IOC_READ, 0x81, size_of::<kvm_bindings::kvm_regs>()),
                kvm_ioctl(IOC_WRITE, 0x82, size_of::<kvm_bindings::kvm_regs>()),
                kvm_ioctl(IOC_READ, 0x9f, size_of::<kvm_bindings::kvm_vcpu_events>()),
                kvm_ioctl(IOC_WRITE, 0xa0, size_of::<kvm_bindings::kvm_vcpu_events>()),
                kvm_ioctl(IOC_READ, 0x83, size_of::<kvm_bindings::kvm_sregs>()),
                kvm_ioctl(IOC_READ, 0x8c, size_of::<kvm_bindings::kvm_fpu>()),
            ];
            let rule = |op: u64| {
                SeccompCondition::new(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, op)
                    .and_then(|c| SeccompRule::new(vec![c]))
            };
            let allowed: Vec<SeccompRule> = ioctls.iter().filter_map(|op| rule(*op).ok()).collect();
            rules.push((SYS_ioctl, allowed));
            // Activating and resetting devices (also from register writes) arms and disarms
            // their own epoll sets.
            plain.push(SYS_epoll_ctl);
            plain.extend(device_io());
        }
        ThreadKind::Vmm => {
            plain.extend([SYS_epoll_wait, SYS_epoll_pwait, SYS_epoll_ctl, SYS_tgkill, SYS_ioctl]);
            plain.extend(device_io());
            // Snapshots: the state and memory files written (created, sized, renamed into
            // place, a memfd's holes skipped); the machine's state read through KVM's ioctls.
            rules.extend(write_only_opens());
            plain.extend([SYS_ftruncate, SYS_lseek, SYS_rename, SYS_renameat, SYS_renameat2]);
        }
        ThreadKind::Api => {
            // PUT /metrics opens its file: write-only opens, nothing else.
            rules.extend(write_only_opens());
            plain.extend([
                SYS_accept4,
                SYS_accept,
                SYS_recvfrom,
                SYS_sendto,
                SYS_clone,
                SYS_clone3,
                SYS_set_robust_list,
                SYS_rseq,
                SYS_prctl,
                SYS_sched_getaffinity,
                SYS_getrandom,
                SYS_fcntl,  // try_clone of a connection (F_DUPFD_CLOEXEC)
                SYS_tgkill, // kicking vCPUs out of the guest to pause them
            ]);
        }
    }
    // Closing a descriptor checks it first (F_GETFD) in debug builds of std.
    let getfd = SeccompCondition::new(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, F_GETFD as u64);
    if let Ok(rule) = getfd.and_then(|c| SeccompRule::new(vec![c])) {
        rules.push((SYS_fcntl, vec![rule]));
    }
    rules.extend(plain.into_iter().map(|nr| (nr, Vec::new())));
    rules
}

fn build(kind: ThreadKind) -> Result<BpfProgram, SeccompError> {
    let e = |e: seccompiler::BackendError| SeccompError(e.to_string());
    let rules: BTreeMap<i64, Vec<SeccompRule>> = allowed(kind).into_iter().collect();
    let arch = std::env::consts::ARCH.try_into().map_err(e)?;
    let filter = SeccompFilter::new(rules, SeccompAction::KillProcess, SeccompAction::Allow, arch)
        .map_err(e)?;
    filter.try_into().map_err(e)
}

/// Confines the calling thread.
pub fn install(kind: ThreadKind) -> Result<(), SeccompError> {
    let program = build(kind)?;
    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS) has no memory effects.
    unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    seccompiler::apply_filter(&program).map_err(|e| SeccompError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kvm_ioctl_numbers_are_linux_s() {
        // From linux/kvm.h on x86-64.
        assert_eq!(kvm_ioctl(IOC_READ, 0x81, size_of::<kvm_bindings::kvm_regs>()), 0x8090_ae81);
        assert_eq!(kvm_ioctl(IOC_WRITE, 0x82, size_of::<kvm_bindings::kvm_regs>()), 0x4090_ae82);
        let events = size_of::<kvm_bindings::kvm_vcpu_events>();
        assert_eq!(kvm_ioctl(IOC_READ, 0x9f, events), 0x8040_ae9f);
        assert_eq!(kvm_ioctl(IOC_WRITE, 0xa0, events), 0x4040_aea0);
        assert_eq!(kvm_ioctl(IOC_READ, 0x83, size_of::<kvm_bindings::kvm_sregs>()), 0x8138_ae83);
        assert_eq!(kvm_ioctl(IOC_READ, 0x8c, size_of::<kvm_bindings::kvm_fpu>()), 0x81a0_ae8c);
    }

    /// Runs `f` in a forked child and returns how it ended (exit code or signal).
    fn in_child(f: impl FnOnce()) -> (Option<i32>, Option<i32>) {
        // SAFETY: the child only runs `f` (no locks held across fork in these tests) and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            f();
            // SAFETY: leaving the child without running the parent's destructors.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        if libc::WIFSIGNALED(status) {
            (None, Some(libc::WTERMSIG(status)))
        } else {
            (Some(libc::WEXITSTATUS(status)), None)
        }
    }

    #[test]
    fn a_forbidden_call_kills_and_allowed_ones_work() {
        for kind in [ThreadKind::Vcpu, ThreadKind::Vmm, ThreadKind::Api] {
            // Opening a file is never allowed once confined.
            let killed = in_child(|| {
                install(kind).unwrap();
                // SAFETY: a plain open(2) of a C string literal.
                unsafe { libc::open(c"/etc/hostname".as_ptr(), libc::O_RDONLY) };
            });
            assert_eq!(killed, (None, Some(libc::SIGSYS)), "{kind:?}");
            let fine = in_child(|| {
                install(kind).unwrap();
                // SAFETY: getpid has no preconditions.
                unsafe { libc::getpid() };
            });
            assert_eq!(fine, (Some(0), None), "{kind:?}");
        }
        // A vCPU thread may only KVM_RUN among the ioctls.
        let killed = in_child(|| {
            install(ThreadKind::Vcpu).unwrap();
            // SAFETY: an ioctl on stdin that the filter stops before the kernel sees it.
            unsafe { libc::ioctl(0, libc::TCGETS) };
        });
        assert_eq!(killed, (None, Some(libc::SIGSYS)));
    }
}
