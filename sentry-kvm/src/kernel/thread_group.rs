//! Thread groups (processes): the threads, shared signal state, exit status, resource use.

use crate::sync::{Mutex, MutexGuard};
use std::sync::Arc;

use crate::abi::signal::{SIGCHLD, Signal};
use crate::kernel::pid_ns::PidNamespace;
use crate::kernel::posix_timer::PosixTimers;
use crate::kernel::signal::SigHandlers;
use crate::kernel::signal::pending::Pending;
use crate::kernel::task::Task;
use crate::waiter::WaitQueue;

/// How a process ended (or stopped), as wait(2) reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    Exited(i32),
    Signaled { sig: Signal, core: bool },
}

impl ExitStatus {
    /// The wait status word.
    pub fn wait_status(self) -> i32 {
        match self {
            ExitStatus::Exited(c) => (c & 0xff) << 8,
            ExitStatus::Signaled { sig, core } => sig as i32 | if core { 0x80 } else { 0 },
        }
    }

    /// What a shell would report: the code, or 128 + signal.
    pub fn shell_code(self) -> i32 {
        match self {
            ExitStatus::Exited(c) => c & 0xff,
            ExitStatus::Signaled { sig, .. } => 128 + sig as i32,
        }
    }
}

/// Job-control state reported to the parent by wait(WUNTRACED/WCONTINUED).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobEvent {
    Stopped(Signal),
    Continued,
}

/// Resource usage accumulators (microseconds of CPU).
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    pub user_us: u64,
    pub sys_us: u64,
    pub maxrss_kb: u64,
}

impl Usage {
    pub fn add(&mut self, o: &Usage) {
        self.user_us += o.user_us;
        self.sys_us += o.sys_us;
        self.maxrss_kb = self.maxrss_kb.max(o.maxrss_kb);
    }
}

pub struct TgState {
    pub threads: Vec<Arc<Task>>,
    pub shared_pending: Pending,
    pub handlers: Arc<Mutex<SigHandlers>>,
    /// Set once the whole group is exiting (exit_group, fatal signal, exec de-threading).
    pub group_exit: Option<ExitStatus>,
    /// Final status once the last thread is gone (a zombie until reaped).
    pub zombie: Option<ExitStatus>,
    /// Job control.
    pub stopped: bool,
    pub job_event: Option<JobEvent>,
    /// Signal sent to the parent on exit.
    pub exit_signal: Signal,
    /// CPU use of exited threads, and of reaped children.
    pub usage: Usage,
    pub children_usage: Usage,
    /// Resource limits (soft, hard), indexed by RLIMIT_*.
    pub rlimits: [(u64, u64); 16],
    /// The pending ITIMER_REAL/alarm deadline and interval.
    pub itimer_real: Option<(std::time::Instant, std::time::Duration)>,
    pub itimer_generation: u64,
    /// Whether this group has already called execve (for setpgid's EACCES rule).
    pub did_exec: bool,
    /// Executable path and object, for /proc/self/exe.
    pub exe: Vec<u8>,
    pub exe_location: Option<crate::vfs::Location>,
}

pub struct ThreadGroup {
    /// The process's id in the sandbox's root PID namespace (the kernel's tables' key).
    pub tgid: i32,
    /// The PID namespace the process lives in (fixed for its life).
    pub pidns: Arc<PidNamespace>,
    state: Mutex<TgState>,
    /// POSIX timers (their own lock: timer workers never take the group's while holding it).
    pub timers: PosixTimers,
    /// Woken when a child changes state (for wait4/waitid in this group).
    pub child_events: WaitQueue,
    /// Woken when the group continues after a stop.
    pub continued: WaitQueue,
    /// Signalled when the group's final status is known (host-side waiters).
    exited: crate::sync::Condvar,
    /// Killed because the sandbox ran out of memory (runtimes report it as OOMKilled).
    oom_killed: std::sync::atomic::AtomicBool,
    /// The first process of its PID namespace (id 1 there): protected from signals without
    /// a handler, the reaper of orphans, and the namespace ends with it.
    ns_init: std::sync::atomic::AtomicBool,
}

pub const RLIM_INFINITY: u64 = u64::MAX;

/// The limits a sandbox's first processes start with; `nofile` is RLIMIT_NOFILE's.
pub fn default_rlimits(nofile: (u64, u64)) -> [(u64, u64); 16] {
    let mut r = [(RLIM_INFINITY, RLIM_INFINITY); 16];
    r[3] = (8 << 20, RLIM_INFINITY); // RLIMIT_STACK
    r[4] = (0, RLIM_INFINITY); // RLIMIT_CORE
    r[6] = (4096, 4096); // RLIMIT_NPROC
    r[7] = nofile; // RLIMIT_NOFILE
    r[8] = (8 << 20, 8 << 20); // RLIMIT_MEMLOCK
    r[11] = (4096, 4096); // RLIMIT_SIGPENDING
    r[12] = (819200, 819200); // RLIMIT_MSGQUEUE
    r
}

impl ThreadGroup {
    pub fn new(
        tgid: i32,
        handlers: Arc<Mutex<SigHandlers>>,
        rlimits: [(u64, u64); 16],
        pidns: Arc<PidNamespace>,
    ) -> Arc<ThreadGroup> {
        Arc::new(ThreadGroup {
            tgid,
            pidns,
            state: Mutex::new(TgState {
                threads: Vec::new(),
                shared_pending: Pending::default(),
                handlers,
                group_exit: None,
                zombie: None,
                stopped: false,
                job_event: None,
                exit_signal: SIGCHLD,
                usage: Usage::default(),
                children_usage: Usage::default(),
                rlimits,
                itimer_real: None,
                itimer_generation: 0,
                did_exec: false,
                exe: Vec::new(),
                exe_location: None,
            }),
            timers: PosixTimers::default(),
            child_events: WaitQueue::new(),
            continued: WaitQueue::new(),
            exited: crate::sync::Condvar::new(),
            oom_killed: std::sync::atomic::AtomicBool::new(false),
            ns_init: std::sync::atomic::AtomicBool::new(false),
        })
    }

    #[track_caller]
    pub fn lock(&self) -> MutexGuard<'_, TgState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state if nobody holds it (for diagnostics on a possibly wedged sandbox).
    pub fn try_lock(&self) -> Option<MutexGuard<'_, TgState>> {
        super::task_dump::try_lock(&self.state)
    }

    /// Records the group's final status and wakes host-side waiters.
    pub fn set_zombie(&self, status: ExitStatus) {
        self.lock().zombie = Some(status);
        self.exited.notify_all();
    }

    /// Whether the group has exited (its final status is known).
    pub fn has_exited(&self) -> bool {
        self.lock().zombie.is_some()
    }

    /// Records that the group is being killed for want of memory.
    pub fn mark_oom_killed(&self) {
        self.oom_killed.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Marks the group as its namespace's init (set once, when it is created).
    pub fn set_ns_init(&self) {
        self.ns_init.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn is_ns_init(&self) -> bool {
        self.ns_init.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn oom_killed(&self) -> bool {
        self.oom_killed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Blocks the calling host thread until the group has exited (even if already reaped).
    pub fn wait_exit(&self) -> ExitStatus {
        let mut st = self.lock();
        loop {
            if let Some(s) = st.zombie {
                return s;
            }
            st = self.exited.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    pub fn handlers(&self) -> Arc<Mutex<SigHandlers>> {
        self.lock().handlers.clone()
    }

    pub fn rlimit(&self, resource: usize) -> (u64, u64) {
        self.lock().rlimits.get(resource).copied().unwrap_or((RLIM_INFINITY, RLIM_INFINITY))
    }

    pub fn threads(&self) -> Vec<Arc<Task>> {
        self.lock().threads.clone()
    }

    pub fn leader(&self) -> Option<Arc<Task>> {
        let st = self.lock();
        st.threads
            .iter()
            .find(|t| t.tid() == self.tgid)
            .cloned()
            .or_else(|| st.threads.first().cloned())
    }
}
