//! The built-in `RuntimeDefault` profile: every system call is allowed except those a
//! container has no business making, which fail with EPERM as under the common container
//! defaults (Docker's and containerd's refuse the same set to a container without extra
//! capabilities):
//!
//! - kernel and machine control: modules, kexec, reboot, swap, accounting, quotas, the
//!   clock (settimeofday, clock_settime, clock_adjtime, adjtimex), iopl/ioperm, _sysctl,
//!   sysfs, ustat, uselib, lookup_dcookie, syslog, nfsservctl and the other obsolete calls;
//! - mounts and namespaces: mount, umount2, pivot_root, the new mount API, unshare, setns,
//!   and clone with namespace flags (clone3 fails with ENOSYS, its flags being out of a
//!   filter's reach, so libc falls back to clone);
//! - kernel attack surface no container needs: keyrings (add_key, request_key, keyctl),
//!   bpf, perf_event_open, userfaultfd, io_uring, file handles (name_to_handle_at,
//!   open_by_handle_at), cross-process memory access and comparison (process_vm_readv/writev,
//!   kcmp), NUMA policy (mbind, set/get_mempolicy, migrate_pages, move_pages);
//! - personality other than the ordinary Linux domain (and the queries and flags libc and
//!   `setarch` use).
//!
//! ptrace stays allowed as in those defaults (the Sentry has no tracer support and returns
//! ENOSYS anyway). The list is data: a deny list keeps everything the Sentry implements
//! usable, and the Sentry itself is the boundary these calls would otherwise reach.

use super::oci::{ArgOp, ArgRule, OciAction, SeccompProfile, SyscallRule};

const DENIED: &[&str] = &[
    "acct",
    "add_key",
    "adjtimex",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "get_kernel_syms",
    "get_mempolicy",
    "init_module",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mbind",
    "migrate_pages",
    "mount",
    "mount_setattr",
    "move_mount",
    "move_pages",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "query_module",
    "quotactl",
    "quotactl_fd",
    "reboot",
    "request_key",
    "set_mempolicy",
    "set_mempolicy_home_node",
    "setns",
    "settimeofday",
    "swapoff",
    "swapon",
    "_sysctl",
    "sysfs",
    "syslog",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "vhangup",
];

/// CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |
/// CLONE_NEWPID | CLONE_NEWNET.
const CLONE_NAMESPACES: u64 = 0x7e02_0000;

/// Personalities allowed: PER_LINUX, PER_LINUX32, UNAME26 with either, and the query.
const PERSONALITIES: [u64; 5] = [0, 0x8, 0x2_0000, 0x2_0008, 0xffff_ffff];

fn rule(names: &[&str], action: OciAction, errno: Option<u32>, args: Vec<ArgRule>) -> SyscallRule {
    SyscallRule {
        names: names.iter().map(|n| n.to_string()).collect(),
        action,
        errno_ret: errno,
        args,
    }
}

/// The `RuntimeDefault` profile.
pub fn profile() -> SeccompProfile {
    let mut syscalls = vec![rule(DENIED, OciAction::Errno, None, vec![])];
    let no_namespaces =
        ArgRule { index: 0, value: CLONE_NAMESPACES, value_two: 0, op: ArgOp::MaskedEqual };
    syscalls.push(rule(&["clone"], OciAction::Allow, None, vec![no_namespaces]));
    syscalls.push(rule(&["clone"], OciAction::Errno, None, vec![]));
    syscalls.push(rule(&["clone3"], OciAction::Errno, Some(38), vec![]));
    for p in PERSONALITIES {
        let arg = ArgRule { index: 0, value: p, value_two: 0, op: ArgOp::Equal };
        syscalls.push(rule(&["personality"], OciAction::Allow, None, vec![arg]));
    }
    syscalls.push(rule(&["personality"], OciAction::Errno, None, vec![]));
    SeccompProfile {
        default_action: OciAction::Allow,
        default_errno_ret: Some(1),
        architectures: vec!["SCMP_ARCH_X86_64".into()],
        flags: vec![],
        syscalls,
    }
}

#[cfg(test)]
mod tests {
    use super::super::filter::{Action, seccomp_data};
    use super::*;
    use crate::syscalls::table;

    #[test]
    fn denies_the_dangerous_set_and_allows_the_rest() {
        for name in DENIED {
            assert!(table::TABLE.iter().any(|e| e.name == *name), "{name} is not a syscall");
        }
        let prog = profile().compile().unwrap();
        let nr = |n: &str| table::TABLE.iter().find(|e| e.name == n).unwrap().nr;
        let verdict = |n: &str, arg0: u64| {
            Action::from_ret(prog.run(&seccomp_data(nr(n), 0, &[arg0, 0, 0, 0, 0, 0])))
        };
        assert_eq!(verdict("mount", 0), Action::Errno(1));
        assert_eq!(verdict("keyctl", 0), Action::Errno(1));
        assert_eq!(verdict("read", 0), Action::Allow);
        assert_eq!(verdict("sethostname", 0), Action::Allow);
        assert_eq!(verdict("clone", 0x11 | 0x0100_0000), Action::Allow);
        assert_eq!(verdict("clone", 0x1000_0000 | 0x11), Action::Errno(1));
        assert_eq!(verdict("clone3", 0), Action::Errno(38));
        assert_eq!(verdict("personality", 0xffff_ffff), Action::Allow);
        assert_eq!(verdict("personality", 0x0040_0000), Action::Errno(1));
    }
}
