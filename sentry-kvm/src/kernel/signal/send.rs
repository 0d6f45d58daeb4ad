//! Generating signals: kill, tgkill, faults, SIGCHLD, job control.

use crate::sync::Mutex;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::abi::signal::*;
use crate::kernel::pid_ns::PidNamespace;
use crate::kernel::signal::SigHandlers;
use crate::kernel::task::Task;
use crate::kernel::thread_group::{ExitStatus, JobEvent, ThreadGroup};

/// Who sends a signal, as a namespace's init tells them apart: it ignores signals it has no
/// handler for from inside its namespace (even SIGKILL), and all but SIGKILL and SIGSTOP from
/// an ancestor namespace.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Origin {
    /// A task of the target's namespace or one below it, or the kernel on its behalf.
    Sandbox,
    /// A task of an ancestor of the target's namespace.
    Ancestor,
    /// The runtime outside the sandbox: delivered as sent.
    Host,
}

impl Origin {
    /// The origin of a signal that `sender` sends to `target`.
    pub fn of(sender: &PidNamespace, target: &ThreadGroup) -> Origin {
        if target.pidns.sees(sender) { Origin::Sandbox } else { Origin::Ancestor }
    }
}

/// Whether a namespace's init drops `sig` (with the default action) from `origin`.
fn init_protected(sig: Signal, origin: Origin) -> bool {
    match origin {
        Origin::Sandbox => true,
        Origin::Ancestor => sig != SIGKILL && sig != SIGSTOP,
        Origin::Host => false,
    }
}

/// Whether `sig` would be dropped at generation. Takes the handler table rather than the group
/// so that callers may hold the group's lock.
fn ignored(handlers: &Mutex<SigHandlers>, init: bool, sig: Signal, origin: Origin) -> bool {
    let a = handlers.lock().unwrap_or_else(|e| e.into_inner()).get(sig);
    if a.handler == SIG_IGN {
        return true;
    }
    if a.handler == SIG_DFL {
        if default_action(sig) == DefaultAction::Ignore {
            return true;
        }
        if init && init_protected(sig, origin) {
            return true;
        }
    }
    false
}

/// `info` as the target's namespace sees it: the sender's (or child's) global id becomes the
/// target's name for it, 0 from outside its namespace.
fn translate(tg: &ThreadGroup, mut info: SigInfo) -> SigInfo {
    if info.pid > 0
        && !tg.pidns.is_root()
        && let Some(t) = tg.threads().first()
    {
        info.pid = t.kernel.tasks().pid_or_zero(&tg.pidns, info.pid);
    }
    info
}

/// Whether SIGKILL or SIGSTOP (which have no handlers) to a namespace's init are dropped.
fn init_immune(tg: &ThreadGroup, sig: Signal, origin: Origin) -> bool {
    (sig == SIGKILL || sig == SIGSTOP) && tg.is_ns_init() && init_protected(sig, origin)
}

/// Starts the exit of every thread of `tg` with `status`.
pub fn group_exit(tg: &Arc<ThreadGroup>, status: ExitStatus) {
    let threads = {
        let mut st = tg.lock();
        if st.group_exit.is_none() {
            st.group_exit = Some(status);
        }
        st.stopped = false;
        st.threads.clone()
    };
    tg.continued.notify_all();
    for t in threads {
        t.exiting.store(true, Ordering::SeqCst);
        t.interrupt();
    }
}

/// Handles the side effects of stop/continue signals at generation time. Returns false if the
/// signal needs no queuing (SIGKILL handled).
fn prepare(tg: &Arc<ThreadGroup>, sig: Signal) -> bool {
    match sig {
        SIGKILL => {
            group_exit(tg, ExitStatus::Signaled { sig: SIGKILL, core: false });
            false
        }
        SIGCONT => {
            let was_stopped = {
                let mut st = tg.lock();
                for s in [SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU] {
                    st.shared_pending.discard(s);
                }
                let was = st.stopped;
                if was {
                    st.stopped = false;
                    st.job_event = Some(JobEvent::Continued);
                }
                was
            };
            for t in tg.threads() {
                let mut s = t.sig();
                for x in [SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU] {
                    s.pending.discard(x);
                }
            }
            if was_stopped {
                tg.continued.notify_all();
                notify_parent_job(tg, CLD_CONTINUED, SIGCONT);
            }
            true
        }
        SIGSTOP | SIGTSTP | SIGTTIN | SIGTTOU => {
            tg.lock().shared_pending.discard(SIGCONT);
            for t in tg.threads() {
                t.sig().pending.discard(SIGCONT);
            }
            true
        }
        _ => true,
    }
}

/// kill(2) to a process.
pub fn send_to_group(tg: &Arc<ThreadGroup>, info: SigInfo, origin: Origin) {
    let sig = info.signo;
    if init_immune(tg, sig, origin) {
        return;
    }
    let info = translate(tg, info);
    if !prepare(tg, sig) {
        return;
    }
    let handlers = tg.handlers();
    let threads = {
        let mut st = tg.lock();
        if st.group_exit.is_some() || st.zombie.is_some() {
            return;
        }
        let blocked_everywhere = st.threads.iter().all(|t| t.sig().mask.has(sig));
        if !blocked_everywhere && ignored(&handlers, tg.is_ns_init(), sig, origin) {
            return;
        }
        st.shared_pending.push(info);
        st.threads.clone()
    };
    for t in threads {
        // Wake even threads that block the signal: sigtimedwait waits for blocked ones.
        t.waker.wake();
        t.recalc_interrupt();
    }
}

/// tgkill(2), and signals aimed at one thread.
pub fn send_to_task(task: &Task, info: SigInfo, origin: Origin) {
    let tg = task.tg();
    let sig = info.signo;
    if init_immune(&tg, sig, origin) {
        return;
    }
    let info = translate(&tg, info);
    if !prepare(&tg, sig) {
        return;
    }
    if tg.lock().group_exit.is_some() {
        return;
    }
    let blocked = task.sig().mask.has(sig);
    if !blocked && ignored(&tg.handlers(), tg.is_ns_init(), sig, origin) {
        return;
    }
    task.sig().pending.push(info);
    task.waker.wake();
    task.recalc_interrupt();
}

/// A synchronous signal from a fault: delivered even if blocked or ignored (then with the
/// default action), as Linux's force_sig does.
pub fn force(task: &Arc<Task>, info: SigInfo) {
    let tg = task.tg();
    let sig = info.signo;
    {
        let handlers = tg.handlers();
        let mut h = handlers.lock().unwrap_or_else(|e| e.into_inner());
        let blocked = task.sig().mask.has(sig);
        let a = h.get(sig);
        if blocked || a.handler == SIG_IGN {
            h.set(sig, SigAction::default());
        }
    }
    {
        let mut s = task.sig();
        s.mask.remove(sig);
        s.pending.push(info);
    }
    task.recalc_interrupt();
}

/// Tells the parent of `tg` that it stopped or continued (SIGCHLD and a wait wake-up).
pub fn notify_parent_job(tg: &Arc<ThreadGroup>, code: i32, sig: Signal) {
    let kernel = match tg.threads().first() {
        Some(t) => t.kernel.clone(),
        None => return,
    };
    let parent = {
        let tasks = kernel.tasks();
        tasks.proc(tg.tgid).and_then(|p| tasks.proc(p.parent)).map(|p| p.tg.clone())
    };
    let Some(parent) = parent else { return };
    parent.child_events.notify_all();
    let a = parent.handlers().lock().unwrap_or_else(|e| e.into_inner()).get(SIGCHLD);
    if a.flags & SA_NOCLDSTOP != 0 {
        return;
    }
    let info =
        SigInfo { signo: SIGCHLD, code, pid: tg.tgid, status: sig as i32, ..Default::default() };
    send_to_group(&parent, info, Origin::Sandbox);
}

/// Sends SIGPIPE to the calling task (a write to a pipe or socket nobody reads).
pub fn sigpipe_current() {
    if let Some(t) = crate::kernel::task::current() {
        send_to_task(&t, SigInfo::kernel(SIGPIPE), Origin::Sandbox);
    }
}
