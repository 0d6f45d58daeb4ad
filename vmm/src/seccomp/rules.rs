//! What each VMM thread may call: the rules its seccomp filter is compiled from. Compiled
//! by the build script (into the BPF the threads install, no compiler run at start-up) and
//! by the tests (which check the two agree).

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

impl ThreadKind {
    pub const ALL: [ThreadKind; 3] = [ThreadKind::Vcpu, ThreadKind::Vmm, ThreadKind::Api];
}

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

// KVM's vCPU ioctls (linux/kvm.h on x86-64: direction, argument size, KVMIO, index), as
// numbers: this file is also compiled by the build script, which has no kvm-bindings.
pub const KVM_RUN: u64 = 0xae80;
pub const KVM_GET_REGS: u64 = 0x8090_ae81;
pub const KVM_SET_REGS: u64 = 0x4090_ae82;
pub const KVM_GET_SREGS: u64 = 0x8138_ae83;
pub const KVM_GET_FPU: u64 = 0x81a0_ae8c;
pub const KVM_GET_VCPU_EVENTS: u64 = 0x8040_ae9f;
pub const KVM_SET_VCPU_EVENTS: u64 = 0x4040_aea0;

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
                KVM_RUN,
                libc::TUNSETOFFLOAD,
                KVM_GET_REGS,
                KVM_SET_REGS,
                KVM_GET_VCPU_EVENTS,
                KVM_SET_VCPU_EVENTS,
                KVM_GET_SREGS,
                KVM_GET_FPU,
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

/// Compiles `kind`'s filter for `arch` (`x86_64`, `aarch64`).
pub fn compile(kind: ThreadKind, arch: &str) -> Result<BpfProgram, String> {
    let e = |e: seccompiler::BackendError| e.to_string();
    let rules: BTreeMap<i64, Vec<SeccompRule>> = allowed(kind).into_iter().collect();
    let arch = arch.try_into().map_err(e)?;
    let filter = SeccompFilter::new(rules, SeccompAction::KillProcess, SeccompAction::Allow, arch)
        .map_err(e)?;
    filter.try_into().map_err(e)
}
