//! Signal numbers, sets and the structures exchanged with applications.

pub type Signal = u32;

pub const SIGHUP: Signal = 1;
pub const SIGINT: Signal = 2;
pub const SIGQUIT: Signal = 3;
pub const SIGILL: Signal = 4;
pub const SIGTRAP: Signal = 5;
pub const SIGABRT: Signal = 6;
pub const SIGBUS: Signal = 7;
pub const SIGFPE: Signal = 8;
pub const SIGKILL: Signal = 9;
pub const SIGUSR1: Signal = 10;
pub const SIGSEGV: Signal = 11;
pub const SIGUSR2: Signal = 12;
pub const SIGPIPE: Signal = 13;
pub const SIGALRM: Signal = 14;
pub const SIGTERM: Signal = 15;
pub const SIGSTKFLT: Signal = 16;
pub const SIGCHLD: Signal = 17;
pub const SIGCONT: Signal = 18;
pub const SIGSTOP: Signal = 19;
pub const SIGTSTP: Signal = 20;
pub const SIGTTIN: Signal = 21;
pub const SIGTTOU: Signal = 22;
pub const SIGURG: Signal = 23;
pub const SIGXCPU: Signal = 24;
pub const SIGXFSZ: Signal = 25;
pub const SIGVTALRM: Signal = 26;
pub const SIGPROF: Signal = 27;
pub const SIGWINCH: Signal = 28;
pub const SIGIO: Signal = 29;
pub const SIGPWR: Signal = 30;
pub const SIGSYS: Signal = 31;
pub const SIGRTMIN: Signal = 32;
pub const NSIG: Signal = 64;

pub const SA_NOCLDSTOP: u64 = 0x1;
pub const SA_NOCLDWAIT: u64 = 0x2;
pub const SA_SIGINFO: u64 = 0x4;
pub const SA_RESTORER: u64 = 0x0400_0000;
pub const SA_ONSTACK: u64 = 0x0800_0000;
pub const SA_RESTART: u64 = 0x1000_0000;
pub const SA_NODEFER: u64 = 0x4000_0000;
pub const SA_RESETHAND: u64 = 0x8000_0000;

/// si_code of a SIGSYS raised by a seccomp filter.
pub const SYS_SECCOMP: i32 = 1;

pub const SIG_DFL: u64 = 0;
pub const SIG_IGN: u64 = 1;

pub const SIG_BLOCK: i32 = 0;
pub const SIG_UNBLOCK: i32 = 1;
pub const SIG_SETMASK: i32 = 2;

pub const SS_ONSTACK: i32 = 1;
pub const SS_DISABLE: i32 = 2;
pub const MINSIGSTKSZ: u64 = 2048;

/// si_code values.
pub const SI_USER: i32 = 0;
pub const SI_KERNEL: i32 = 0x80;
pub const SI_TKILL: i32 = -6;
pub const SI_TIMER: i32 = -2;
pub const CLD_EXITED: i32 = 1;
pub const CLD_KILLED: i32 = 2;
pub const CLD_DUMPED: i32 = 3;
pub const CLD_STOPPED: i32 = 5;
pub const CLD_CONTINUED: i32 = 6;
pub const SEGV_MAPERR: i32 = 1;
pub const SEGV_ACCERR: i32 = 2;
pub const BUS_ADRERR: i32 = 2;
pub const FPE_INTDIV: i32 = 1;
pub const ILL_ILLOPN: i32 = 2;
pub const TRAP_BRKPT: i32 = 1;

/// A set of signals, bit `n-1` for signal `n`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SigSet(pub u64);

impl SigSet {
    pub const EMPTY: SigSet = SigSet(0);
    /// Signals that can never be blocked.
    pub const UNBLOCKABLE: SigSet = SigSet((1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1)));

    pub fn of(sig: Signal) -> SigSet {
        SigSet(1 << (sig - 1))
    }
    pub fn has(self, sig: Signal) -> bool {
        (1..=NSIG).contains(&sig) && self.0 & (1 << (sig - 1)) != 0
    }
    pub fn add(&mut self, sig: Signal) {
        self.0 |= 1 << (sig - 1);
    }
    pub fn remove(&mut self, sig: Signal) {
        self.0 &= !(1 << (sig - 1));
    }
    /// The mask with the unblockable signals removed.
    pub fn blockable(self) -> SigSet {
        SigSet(self.0 & !Self::UNBLOCKABLE.0)
    }
    /// Lowest-numbered signal in the set (synchronous signals first, as Linux picks them).
    pub fn first(self) -> Option<Signal> {
        const SYNC: u64 = (1 << (SIGSEGV - 1))
            | (1 << (SIGBUS - 1))
            | (1 << (SIGILL - 1))
            | (1 << (SIGTRAP - 1))
            | (1 << (SIGFPE - 1))
            | (1 << (SIGSYS - 1));
        let sync = self.0 & SYNC;
        let bits = if sync != 0 { sync } else { self.0 };
        (bits != 0).then(|| bits.trailing_zeros() + 1)
    }
}

pub fn valid(sig: Signal) -> bool {
    (1..=NSIG).contains(&sig)
}

/// What a signal does when its disposition is SIG_DFL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultAction {
    Terminate,
    CoreDump,
    Ignore,
    Stop,
    Continue,
}

pub fn default_action(sig: Signal) -> DefaultAction {
    use DefaultAction::*;
    match sig {
        SIGCHLD | SIGURG | SIGWINCH => Ignore,
        SIGCONT => Continue,
        SIGSTOP | SIGTSTP | SIGTTIN | SIGTTOU => Stop,
        SIGQUIT | SIGILL | SIGTRAP | SIGABRT | SIGBUS | SIGFPE | SIGSEGV | SIGXCPU | SIGXFSZ
        | SIGSYS => CoreDump,
        s if s >= SIGRTMIN => Terminate,
        _ => Terminate,
    }
}

/// The kernel's `struct sigaction` on x86-64 (handler, flags, restorer, mask).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SigAction {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: SigSet,
}

impl SigAction {
    pub const SIZE: usize = 32;

    pub fn from_bytes(b: &[u8; 32]) -> Self {
        let q = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
        SigAction { handler: q(0), flags: q(1), restorer: q(2), mask: SigSet(q(3)) }
    }

    pub fn to_bytes(self) -> [u8; 32] {
        let mut b = [0u8; 32];
        b[0..8].copy_from_slice(&self.handler.to_le_bytes());
        b[8..16].copy_from_slice(&self.flags.to_le_bytes());
        b[16..24].copy_from_slice(&self.restorer.to_le_bytes());
        b[24..32].copy_from_slice(&self.mask.0.to_le_bytes());
        b
    }
}

/// The fields of a `siginfo_t` the Sentry fills in; laid out by `to_bytes`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SigInfo {
    pub signo: Signal,
    pub code: i32,
    pub errno: i32,
    /// Sender pid / child pid; or, for faults, unused.
    pub pid: i32,
    pub uid: u32,
    /// SIGCHLD: exit status or signal; SIGSYS: the system call number.
    pub status: i32,
    /// Faults: the address; SIGSYS: the address after the system call instruction.
    pub addr: u64,
    /// Timers / sigqueue value; SIGSYS: the audit architecture.
    pub value: u64,
    /// POSIX timers (SI_TIMER): the timer and its overrun count.
    pub timer_id: i32,
    pub overrun: i32,
}

impl SigInfo {
    pub const SIZE: usize = 128;

    pub fn kernel(signo: Signal) -> Self {
        SigInfo { signo, code: SI_KERNEL, ..Default::default() }
    }

    pub fn fault(signo: Signal, code: i32, addr: u64) -> Self {
        SigInfo { signo, code, addr, ..Default::default() }
    }

    pub fn to_bytes(&self) -> [u8; 128] {
        let mut b = [0u8; 128];
        b[0..4].copy_from_slice(&self.signo.to_le_bytes());
        b[4..8].copy_from_slice(&self.errno.to_le_bytes());
        b[8..12].copy_from_slice(&self.code.to_le_bytes());
        match self.signo {
            SIGSEGV | SIGBUS | SIGILL | SIGFPE | SIGTRAP if self.code > 0 => {
                b[16..24].copy_from_slice(&self.addr.to_le_bytes());
            }
            _ if self.code == SI_TIMER => {
                b[16..20].copy_from_slice(&self.timer_id.to_le_bytes());
                b[20..24].copy_from_slice(&self.overrun.to_le_bytes());
                b[24..32].copy_from_slice(&self.value.to_le_bytes());
            }
            SIGSYS if self.code == SYS_SECCOMP => {
                b[16..24].copy_from_slice(&self.addr.to_le_bytes());
                b[24..28].copy_from_slice(&self.status.to_le_bytes());
                b[28..32].copy_from_slice(&(self.value as u32).to_le_bytes());
            }
            SIGCHLD => {
                b[16..20].copy_from_slice(&self.pid.to_le_bytes());
                b[20..24].copy_from_slice(&self.uid.to_le_bytes());
                b[24..28].copy_from_slice(&self.status.to_le_bytes());
            }
            _ => {
                b[16..20].copy_from_slice(&self.pid.to_le_bytes());
                b[20..24].copy_from_slice(&self.uid.to_le_bytes());
                b[24..32].copy_from_slice(&self.value.to_le_bytes());
            }
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synchronous_signals_are_picked_first() {
        let mut s = SigSet::EMPTY;
        s.add(SIGINT);
        s.add(SIGSEGV);
        assert_eq!(s.first(), Some(SIGSEGV));
        s.remove(SIGSEGV);
        assert_eq!(s.first(), Some(SIGINT));
    }

    #[test]
    fn timer_siginfo_carries_id_overrun_and_value() {
        let i = SigInfo {
            signo: SIGALRM,
            code: SI_TIMER,
            timer_id: 3,
            overrun: 7,
            value: 42,
            ..Default::default()
        };
        let b = i.to_bytes();
        assert_eq!(&b[8..12], &SI_TIMER.to_le_bytes());
        assert_eq!(&b[16..20], &3i32.to_le_bytes());
        assert_eq!(&b[20..24], &7i32.to_le_bytes());
        assert_eq!(&b[24..32], &42u64.to_le_bytes());
    }

    #[test]
    fn sigaction_round_trips() {
        let a = SigAction { handler: 1, flags: SA_RESTART, restorer: 3, mask: SigSet(5) };
        assert_eq!(SigAction::from_bytes(&a.to_bytes()), a);
    }
}
