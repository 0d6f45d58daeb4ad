//! Per-thread seccomp filters (seccompiler): each VMM thread may make only the system calls
//! its job needs, installed before it touches guest input (a vCPU thread before its first
//! KVM_RUN). Anything else kills the process: a compromised VMM thread gets no second try.
//! No thread may open files or start programs once the machine runs.

// Outside the tests, only the thread kinds are used here: the build script compiles the rest.
#[cfg_attr(not(test), allow(dead_code))]
mod rules;

pub use rules::ThreadKind;

#[derive(Debug, thiserror::Error)]
#[error("seccomp: {0}")]
pub struct SeccompError(String);

/// The filters the build script compiled from [`rules`], as `(code, jt, jf, k)`, one constant
/// per thread kind (its name in capitals).
mod compiled {
    include!(concat!(env!("OUT_DIR"), "/seccomp_filters.rs"));
}

fn program(kind: ThreadKind) -> Vec<seccompiler::sock_filter> {
    let code = match kind {
        ThreadKind::Vcpu => compiled::VCPU,
        ThreadKind::Vmm => compiled::VMM,
        ThreadKind::Api => compiled::API,
    };
    code.iter().map(|&(code, jt, jf, k)| seccompiler::sock_filter { code, jt, jf, k }).collect()
}

/// Confines the calling thread.
pub fn install(kind: ThreadKind) -> Result<(), SeccompError> {
    let program = program(kind);
    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS) has no memory effects.
    unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    seccompiler::apply_filter(&program).map_err(|e| SeccompError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A KVM ioctl's number: direction, argument size, KVMIO (0xae) and its index.
    fn kvm_ioctl(dir: u64, nr: u64, size: usize) -> u64 {
        (dir << 30) | ((size as u64) << 16) | (0xae << 8) | nr
    }

    #[test]
    fn kvm_ioctl_numbers_match_kvm_bindings_structures() {
        use rules::*;
        let (read, write) = (2, 1);
        let regs = size_of::<kvm_bindings::kvm_regs>();
        assert_eq!(kvm_ioctl(read, 0x81, regs), KVM_GET_REGS);
        assert_eq!(kvm_ioctl(write, 0x82, regs), KVM_SET_REGS);
        let events = size_of::<kvm_bindings::kvm_vcpu_events>();
        assert_eq!(kvm_ioctl(read, 0x9f, events), KVM_GET_VCPU_EVENTS);
        assert_eq!(kvm_ioctl(write, 0xa0, events), KVM_SET_VCPU_EVENTS);
        assert_eq!(kvm_ioctl(read, 0x83, size_of::<kvm_bindings::kvm_sregs>()), KVM_GET_SREGS);
        assert_eq!(kvm_ioctl(read, 0x8c, size_of::<kvm_bindings::kvm_fpu>()), KVM_GET_FPU);
        assert_eq!(kvm_ioctl(0, 0x80, 0), KVM_RUN);
    }

    #[test]
    fn the_built_in_filters_are_the_rules_compiled_for_this_machine() {
        for kind in ThreadKind::ALL {
            let fresh = rules::compile(kind, std::env::consts::ARCH).unwrap();
            let built = program(kind);
            let same = fresh.len() == built.len()
                && fresh
                    .iter()
                    .zip(&built)
                    .all(|(a, b)| (a.code, a.jt, a.jf, a.k) == (b.code, b.jt, b.jf, b.k));
            assert!(
                same,
                "{kind:?}: {} instructions built in, {} compiled",
                built.len(),
                fresh.len()
            );
        }
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
        for kind in ThreadKind::ALL {
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
