//! Tasks (threads). Each task runs on a host thread of its own, which owns one vCPU while the
//! task lives; blocking syscalls block that host thread.

use crate::sync::{Mutex, MutexGuard};
use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::time::Instant;

use crate::abi::Errno;
use crate::abi::signal::{SIGPIPE, SigInfo, SigSet};
use crate::creds::Credentials;
use crate::kernel::Kernel;
use crate::kernel::fs_context::FsContext;
use crate::kernel::pid_ns::PidNamespace;
use crate::kernel::seccomp::SeccompState;
use crate::kernel::signal::AltStack;
use crate::kernel::signal::pending::Pending;
use crate::kernel::signal::send::{Origin, send_to_task};
use crate::kernel::thread_group::ThreadGroup;
use crate::mm::address_space::MemoryManager;
use crate::platform::Kick;
use crate::vfs::context::Context;
use crate::vfs::fd_table::FdTable;
use crate::waiter::{Waker, Woken};

/// Per-thread signal state.
#[derive(Default)]
pub struct TaskSignals {
    pub mask: SigSet,
    pub pending: Pending,
    pub altstack: AltStack,
    /// Mask to restore after a temporary one (sigsuspend, pselect, ppoll) once a signal has
    /// been delivered.
    pub saved_mask: Option<SigSet>,
}

/// Signalled when a vfork child execs or exits.
#[derive(Default)]
pub struct Completion {
    done: Mutex<bool>,
    pub queue: crate::waiter::WaitQueue,
}

impl Completion {
    pub fn complete(&self) {
        *self.done.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.queue.notify_all();
    }
    pub fn is_done(&self) -> bool {
        *self.done.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct Task {
    tid: AtomicI32,
    pub kernel: Arc<Kernel>,
    tg: Mutex<Arc<ThreadGroup>>,
    pub waker: Arc<Waker>,
    pub kicker: Mutex<Option<Arc<dyn Kick>>>,
    pub sig: Mutex<TaskSignals>,
    mm: Mutex<Arc<MemoryManager>>,
    fs: Mutex<Arc<FsContext>>,
    files: Mutex<Arc<FdTable>>,
    creds: Mutex<Arc<Credentials>>,
    pub clear_child_tid: AtomicU64,
    pub robust_list: AtomicU64,
    pub comm: Mutex<Vec<u8>>,
    pub start: Instant,
    /// Host thread id, for its CPU clock.
    pub host_tid: AtomicI32,
    /// Set when this thread must exit (exit(2), group exit, exec de-threading).
    pub exiting: AtomicBool,
    pub vfork_done: Mutex<Option<Arc<Completion>>>,
    /// Remaining time of an interrupted nanosleep, for restart_syscall.
    pub restart_deadline: Mutex<Option<Instant>>,
    /// Nice value (-20..=19), inherited across clone and fork.
    pub nice: AtomicI32,
    /// CPUs the task may run on (bit n: vCPU n), inherited across clone and fork.
    pub affinity: AtomicU64,
    /// PR_SET_NO_NEW_PRIVS: set once, never cleared, inherited.
    pub no_new_privs: AtomicBool,
    /// Seccomp mode and filters, inherited across clone, fork and execve.
    pub seccomp: SeccompState,
    /// The system call it is in, for task dumps.
    pub activity: crate::kernel::task_dump::Activity,
    /// The PID namespace of the task's future children when unshare(CLONE_NEWPID) made it
    /// differ from the task's own.
    children_ns: Mutex<Option<Arc<PidNamespace>>>,
}

impl Task {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        tid: i32,
        kernel: Arc<Kernel>,
        tg: Arc<ThreadGroup>,
        mm: Arc<MemoryManager>,
        fs: Arc<FsContext>,
        files: Arc<FdTable>,
        creds: Arc<Credentials>,
        mask: SigSet,
        comm: Vec<u8>,
    ) -> Arc<Task> {
        Arc::new(Task {
            tid: AtomicI32::new(tid),
            kernel,
            tg: Mutex::new(tg),
            waker: Waker::new(),
            kicker: Mutex::new(None),
            sig: Mutex::new(TaskSignals { mask, ..Default::default() }),
            mm: Mutex::new(mm),
            fs: Mutex::new(fs),
            files: Mutex::new(files),
            creds: Mutex::new(creds),
            clear_child_tid: AtomicU64::new(0),
            robust_list: AtomicU64::new(0),
            comm: Mutex::new(comm),
            start: Instant::now(),
            host_tid: AtomicI32::new(0),
            exiting: AtomicBool::new(false),
            vfork_done: Mutex::new(None),
            restart_deadline: Mutex::new(None),
            nice: AtomicI32::new(0),
            affinity: AtomicU64::new(u64::MAX),
            no_new_privs: AtomicBool::new(false),
            seccomp: SeccompState::default(),
            activity: Default::default(),
            children_ns: Mutex::new(None),
        })
    }

    pub fn tid(&self) -> i32 {
        self.tid.load(Ordering::Relaxed)
    }

    pub fn set_tid(&self, tid: i32) {
        self.tid.store(tid, Ordering::Relaxed)
    }

    pub fn tg(&self) -> Arc<ThreadGroup> {
        self.tg.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The thread group if nobody holds the reference's lock (for diagnostics).
    pub fn try_tg(&self) -> Option<Arc<ThreadGroup>> {
        super::task_dump::try_lock(&self.tg).map(|g| g.clone())
    }

    pub fn tgid(&self) -> i32 {
        self.tg().tgid
    }

    /// The PID namespace the task lives in (its process's).
    pub fn pidns(&self) -> Arc<PidNamespace> {
        self.tg().pidns.clone()
    }

    /// The PID namespace the task's new children go to.
    pub fn children_pidns(&self) -> Arc<PidNamespace> {
        let set = self.children_ns.lock().unwrap_or_else(|e| e.into_inner()).clone();
        set.unwrap_or_else(|| self.pidns())
    }

    /// unshare(CLONE_NEWPID): the task's next child starts (as init) a new namespace below
    /// its own. EINVAL when it has done so already, as Linux.
    pub fn unshare_pidns(&self) -> Result<(), Errno> {
        let own = self.pidns();
        let mut set = self.children_ns.lock().unwrap_or_else(|e| e.into_inner());
        if set.as_ref().is_some_and(|n| !Arc::ptr_eq(n, &own)) {
            return Err(Errno::EINVAL);
        }
        *set = Some(own.new_child()?);
        Ok(())
    }

    /// Global id `global` as this task names it: 0 when it is outside the task's namespace.
    /// Takes the task table's lock.
    pub fn pid_seen(&self, global: i32) -> i32 {
        let ns = self.pidns();
        if ns.is_root() {
            return global.max(0);
        }
        self.kernel.tasks().pid_or_zero(&ns, global)
    }

    /// The global id of what this task names `local` (None: nothing it can see). Takes the
    /// task table's lock.
    pub fn pid_global(&self, local: i32) -> Option<i32> {
        let ns = self.pidns();
        if ns.is_root() {
            return (local > 0).then_some(local);
        }
        self.kernel.tasks().global_of(&ns, local)
    }

    pub fn mm(&self) -> Arc<MemoryManager> {
        self.mm.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_mm(&self, mm: Arc<MemoryManager>) -> Arc<MemoryManager> {
        std::mem::replace(&mut *self.mm.lock().unwrap_or_else(|e| e.into_inner()), mm)
    }

    pub fn fs(&self) -> Arc<FsContext> {
        self.fs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_fs(&self, fs: Arc<FsContext>) {
        *self.fs.lock().unwrap_or_else(|e| e.into_inner()) = fs;
    }

    pub fn files(&self) -> Arc<FdTable> {
        self.files.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_files(&self, files: Arc<FdTable>) -> Arc<FdTable> {
        std::mem::replace(&mut *self.files.lock().unwrap_or_else(|e| e.into_inner()), files)
    }

    pub fn creds(&self) -> Arc<Credentials> {
        self.creds.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_creds(&self, c: Credentials) {
        *self.creds.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(c);
    }

    pub fn sig(&self) -> MutexGuard<'_, TaskSignals> {
        self.sig.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the parent's nice value and CPU affinity (clone, fork).
    pub fn inherit_sched(&self, parent: &Task) {
        self.nice.store(parent.nice.load(Ordering::Relaxed), Ordering::Relaxed);
        self.affinity.store(parent.affinity.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// Takes the parent's no_new_privs and seccomp filters (clone, fork).
    pub fn inherit_security(&self, parent: &Task) {
        self.no_new_privs.store(parent.no_new_privs.load(Ordering::SeqCst), Ordering::SeqCst);
        self.seccomp.inherit(&parent.seccomp);
    }

    pub fn comm(&self) -> Vec<u8> {
        self.comm.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Interrupts whatever the task is doing: a blocking wait or application code on its vCPU.
    pub fn interrupt(&self) {
        self.waker.set_interrupt(true);
        if let Some(k) = self.kicker.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            k.kick();
        }
    }

    /// Recomputes whether the task has work at its next return to user mode (a deliverable
    /// signal, a stop, an exit) and interrupts it if so.
    /// After this thread changed its signal mask from `old`: POSIX timers already due fire
    /// first when signals were unblocked (so their signals are pending, as on Linux, however
    /// late the timers' own threads run), then deliverability is recomputed.
    pub fn mask_changed(&self, old: SigSet) {
        if old.0 & !self.sig().mask.0 != 0 {
            self.tg().timers.catch_up();
        }
        self.recalc_interrupt();
    }

    pub fn recalc_interrupt(&self) {
        let tg = self.tg();
        let tst = tg.lock();
        let on =
            self.exiting.load(Ordering::SeqCst) || tst.group_exit.is_some() || tst.stopped || {
                let s = self.sig();
                let deliverable = (s.pending.set().0 | tst.shared_pending.set().0) & !s.mask.0;
                deliverable != 0
            };
        drop(tst);
        if on {
            self.interrupt();
        } else {
            self.waker.set_interrupt(false);
        }
    }

    /// Blocks until woken; EINTR if a signal (or exit) interrupts. Callers loop re-checking
    /// their condition after registering with the relevant wait queues.
    pub fn block(&self, deadline: Option<Instant>) -> Result<(), Errno> {
        match self.waker.block(deadline) {
            Woken::Notified => Ok(()),
            Woken::Interrupted => Err(Errno::ERESTARTSYS),
            Woken::TimedOut => Err(Errno::ETIMEDOUT),
        }
    }

    /// Microseconds of CPU this thread has used (guest and Sentry time together).
    pub fn cpu_us(&self) -> u64 {
        let tid = self.host_tid.load(Ordering::Relaxed);
        if tid <= 0 {
            return 0;
        }
        // Per-thread CPU clock id: MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED).
        let clock = ((!tid) << 3) | 6;
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: plain clock_gettime into a local.
        if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
            return 0;
        }
        let app = match self.kicker.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            Some(k) => k.app_time().as_micros() as u64,
            None => 0,
        };
        ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000 + app
    }
}

/// What file operations see of a task.
impl Context for Task {
    fn creds(&self) -> Arc<Credentials> {
        Task::creds(self)
    }

    fn waker(&self) -> &Arc<Waker> {
        &self.waker
    }

    fn block(&self, deadline: Option<Instant>) -> Result<(), Errno> {
        Task::block(self, deadline)
    }

    fn copy_in(&self, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
        self.mm().copy_in(addr, buf)
    }

    fn copy_out(&self, addr: u64, data: &[u8]) -> Result<(), Errno> {
        self.mm().copy_out(addr, data)
    }

    fn sigpipe(&self) {
        send_to_task(self, SigInfo::kernel(SIGPIPE), Origin::Sandbox);
    }

    fn process_group(&self) -> i32 {
        let ns = self.pidns();
        let tasks = self.kernel.tasks();
        let pgid = tasks.proc(self.tgid()).map(|p| p.pgid).unwrap_or(1);
        tasks.pid_or_zero(&ns, pgid)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The task a vfs context stands for: the kernel only ever hands tasks to the vfs (gVisor's
/// `TaskFromContext`).
pub fn task_of(ctx: &dyn Context) -> Result<&Task, Errno> {
    ctx.as_any().downcast_ref::<Task>().ok_or(Errno::EINVAL)
}

thread_local! {
    static CURRENT: std::cell::RefCell<Option<Arc<Task>>> = const { std::cell::RefCell::new(None) };
}

/// The task whose host thread is running (None on threads that are not task threads).
pub fn current() -> Option<Arc<Task>> {
    CURRENT.with(|c| c.borrow().clone())
}

pub fn set_current(task: Option<Arc<Task>>) {
    CURRENT.with(|c| *c.borrow_mut() = task);
}
