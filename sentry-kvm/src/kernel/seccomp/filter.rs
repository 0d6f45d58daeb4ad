//! Seccomp actions and stacked filters: what one system call's `struct seccomp_data` is, and
//! what a task's filters decide for it together.

use std::sync::Arc;

use super::bpf::{DATA_LEN, Program};

pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;

const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_KILL_THREAD: u32 = 0;
const RET_TRAP: u32 = 0x0003_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_USER_NOTIF: u32 = 0x7fc0_0000;
const RET_TRACE: u32 = 0x7ff0_0000;
const RET_LOG: u32 = 0x7ffc_0000;
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_ACTION_FULL: u32 = 0xffff_0000;
const RET_DATA: u32 = 0xffff;
/// Larger errno values are clamped, as Linux does.
const MAX_ERRNO: u16 = 4095;

/// What a filter says about a system call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    KillProcess,
    KillThread,
    /// SIGSYS, with this value in si_errno.
    Trap(u16),
    /// Fail with this errno, without running the call.
    Errno(u16),
    UserNotif,
    Trace(u16),
    Log,
    Allow,
}

impl Action {
    /// Decodes a filter's return value; unknown actions kill the process, as on Linux.
    pub fn from_ret(ret: u32) -> Action {
        let data = (ret & RET_DATA) as u16;
        match ret & RET_ACTION_FULL {
            RET_KILL_PROCESS => Action::KillProcess,
            RET_KILL_THREAD => Action::KillThread,
            RET_TRAP => Action::Trap(data),
            RET_ERRNO => Action::Errno(data.min(MAX_ERRNO)),
            RET_USER_NOTIF => Action::UserNotif,
            RET_TRACE => Action::Trace(data),
            RET_LOG => Action::Log,
            RET_ALLOW => Action::Allow,
            _ => Action::KillProcess,
        }
    }

    pub fn to_ret(self) -> u32 {
        match self {
            Action::KillProcess => RET_KILL_PROCESS,
            Action::KillThread => RET_KILL_THREAD,
            Action::Trap(d) => RET_TRAP | u32::from(d),
            Action::Errno(d) => RET_ERRNO | u32::from(d),
            Action::UserNotif => RET_USER_NOTIF,
            Action::Trace(d) => RET_TRACE | u32::from(d),
            Action::Log => RET_LOG,
            Action::Allow => RET_ALLOW,
        }
    }

    /// Whether seccomp(SECCOMP_GET_ACTION_AVAIL) reports `ret`'s action as available. User
    /// notification needs a listener descriptor the Sentry does not offer.
    pub fn available(ret: u32) -> bool {
        matches!(
            ret,
            RET_KILL_PROCESS
                | RET_KILL_THREAD
                | RET_TRAP
                | RET_ERRNO
                | RET_TRACE
                | RET_LOG
                | RET_ALLOW
        )
    }
}

/// `struct seccomp_data` for one call.
pub fn seccomp_data(nr: u64, ip: u64, args: &[u64; 6]) -> [u8; DATA_LEN as usize] {
    let mut d = [0u8; DATA_LEN as usize];
    d[0..4].copy_from_slice(&(nr as u32).to_le_bytes());
    d[4..8].copy_from_slice(&AUDIT_ARCH_X86_64.to_le_bytes());
    d[8..16].copy_from_slice(&ip.to_le_bytes());
    for (i, a) in args.iter().enumerate() {
        d[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
    }
    d
}

/// One installed filter and the ones installed before it (shared with the tasks that
/// inherited them: filters only ever stack).
#[derive(Debug)]
pub struct Filter {
    pub prog: Program,
    pub prev: Option<Arc<Filter>>,
}

/// Linux's bound on a task's filters: total instructions, counting 4 extra per filter.
pub const MAX_INSNS_PER_PATH: usize = 32768;

impl Filter {
    pub fn iter(self: &Arc<Self>) -> impl Iterator<Item = &Filter> {
        std::iter::successors(Some(&**self), |f| f.prev.as_deref())
    }

    pub fn count(self: &Arc<Self>) -> usize {
        self.iter().count()
    }

    /// Instructions charged to this chain.
    pub fn cost(self: &Arc<Self>) -> usize {
        self.iter().map(|f| f.prog.len() + 4).sum()
    }

    /// Whether `other` is this filter or one stacked under it.
    pub fn descends_from(self: &Arc<Self>, other: &Arc<Filter>) -> bool {
        self.iter().any(|f| std::ptr::eq(f, &**other))
    }

    /// Runs every filter; the most restrictive answer wins (lowest action as a signed value;
    /// among equal actions, the newest filter's data).
    pub fn evaluate(self: &Arc<Self>, data: &[u8; DATA_LEN as usize]) -> u32 {
        let mut best = RET_ALLOW;
        for f in self.iter() {
            let r = f.prog.run(data);
            if ((r & RET_ACTION_FULL) as i32) < ((best & RET_ACTION_FULL) as i32) {
                best = r;
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::super::bpf::{Insn, op};
    use super::*;

    fn ret(action: Action) -> Program {
        Program::new(vec![Insn::stmt(op::RET_K, action.to_ret())]).unwrap()
    }

    #[test]
    fn the_most_restrictive_filter_wins() {
        let a = Arc::new(Filter { prog: ret(Action::Errno(1)), prev: None });
        let b = Arc::new(Filter { prog: ret(Action::Allow), prev: Some(a.clone()) });
        let c = Arc::new(Filter { prog: ret(Action::Trap(0)), prev: Some(b.clone()) });
        let d = seccomp_data(1, 0, &[0; 6]);
        assert_eq!(Action::from_ret(b.evaluate(&d)), Action::Errno(1));
        assert_eq!(Action::from_ret(c.evaluate(&d)), Action::Trap(0));
        let k = Arc::new(Filter { prog: ret(Action::KillProcess), prev: Some(c.clone()) });
        assert_eq!(Action::from_ret(k.evaluate(&d)), Action::KillProcess);
        assert_eq!((c.count(), c.cost()), (3, 15));
        assert!(c.descends_from(&a) && !a.descends_from(&c));
    }

    #[test]
    fn actions_decode_like_linux() {
        assert_eq!(Action::from_ret(0x0005_ffff), Action::Errno(4095));
        assert_eq!(Action::from_ret(0x0004_0000), Action::KillProcess, "unknown action");
        assert_eq!(Action::from_ret(0), Action::KillThread);
        for a in [Action::Allow, Action::Log, Action::Trap(3), Action::Trace(2)] {
            assert_eq!(Action::from_ret(a.to_ret()), a);
        }
        assert!(!Action::available(0x7fc0_0000) && Action::available(0x7fff_0000));
    }
}
