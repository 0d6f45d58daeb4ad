//! Thread and process exit, zombies, reparenting, and wait4/waitid.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::abi::Errno;
use crate::abi::signal::*;
use crate::kernel::futex::{FUTEX_BITSET_MATCH_ANY, FutexKey};
use crate::kernel::pid::TaskTable;
use crate::kernel::signal::send::{Origin, group_exit, send_to_group};
use crate::kernel::task::Task;
use crate::kernel::thread_group::{ExitStatus, JobEvent, ThreadGroup, Usage};
use crate::waiter::Events;

pub const WNOHANG: u32 = 1;
pub const WUNTRACED: u32 = 2;
pub const WSTOPPED: u32 = 2;
pub const WEXITED: u32 = 4;
pub const WCONTINUED: u32 = 8;
pub const WNOWAIT: u32 = 0x0100_0000;
pub const WALL: u32 = 0x4000_0000;
pub const WCLONE: u32 = 0x8000_0000;

/// Finishes a task whose host thread is leaving the run loop. `code` is the exit(2) status
/// used if this is the last thread and the group is not already exiting.
pub fn exit_task(task: &Arc<Task>, code: i32) {
    // CLONE_CHILD_CLEARTID: clear the word and wake one waiter (pthread_join).
    let ctid = task.clear_child_tid.swap(0, Ordering::Relaxed);
    if ctid != 0 {
        let mm = task.mm();
        if mm.copy_out(ctid, &0u32.to_le_bytes()).is_ok()
            && let Ok(key) = FutexKey::of(&mm, ctid, false)
        {
            task.kernel.futexes.wake(key, 1, FUTEX_BITSET_MATCH_ANY);
        }
    }
    if let Some(c) = task.vfork_done.lock().unwrap_or_else(|e| e.into_inner()).take() {
        c.complete();
    }
    let tg = task.tg();
    let cpu = task.cpu_us();
    let last = {
        let mut st = tg.lock();
        st.threads.retain(|t| !Arc::ptr_eq(t, task));
        st.usage.user_us += cpu;
        st.threads.is_empty()
    };
    task.kernel.tasks().threads.remove(&task.tid());
    // Threads blocked in de_thread wait for this.
    tg.child_events.notify_all();
    if !last {
        return;
    }
    let status = {
        let mut st = tg.lock();
        let s = st.group_exit.unwrap_or(ExitStatus::Exited(code));
        st.group_exit = Some(s);
        s
    };
    // Release what the process holds so that peers see EOF promptly, and leave its System V
    // IPC objects as Linux's exit does (segments detached, SEM_UNDO applied).
    drop(task.files().clear());
    crate::kernel::ipc::shm::detach_all(task);
    task.kernel.ipc.process_exited(tg.tgid);
    exit_group_finish(task, &tg, status);
}

fn exit_group_finish(task: &Arc<Task>, tg: &Arc<ThreadGroup>, status: ExitStatus) {
    let kernel = task.kernel.clone();
    let leads_session = kernel.tasks().proc(tg.tgid).is_some_and(|p| p.sid == tg.tgid);
    if leads_session && let Some(tty) = kernel.devpts.controlling(tg.tgid) {
        tty.controlling_process_exited();
    }
    let (parent, autoreap, ns_over) = {
        let mut tasks = kernel.tasks();
        let children: Vec<i32> =
            tasks.proc(tg.tgid).map(|p| p.children.iter().copied().collect()).unwrap_or_default();
        let ns_init = tg.is_ns_init();
        if ns_init && !tg.pidns.is_root() {
            tg.pidns.end();
        }
        // Orphans go to their namespace's init; when that is the one exiting, to the nearest
        // living init above (the root's init: nowhere, the sandbox ends).
        if let Some(reaper) = reaper(&tasks, tg) {
            for c in &children {
                if let Some(p) = tasks.proc_mut(*c) {
                    p.parent = reaper;
                }
            }
            if let Some(r) = tasks.proc_mut(reaper) {
                r.children.extend(children.iter().copied());
            }
        }
        let parent = tasks.proc(tg.tgid).and_then(|p| tasks.proc(p.parent)).map(|p| p.tg.clone());
        let autoreap = match &parent {
            Some(p) => {
                let a = p.handlers().lock().unwrap_or_else(|e| e.into_inner()).get(SIGCHLD);
                a.handler == SIG_IGN || a.flags & SA_NOCLDWAIT != 0
            }
            None => true,
        };
        // A namespace's init takes every other process of it (and of namespaces below) along.
        let ns_over: Vec<Arc<ThreadGroup>> = if ns_init && tg.tgid != 1 {
            tasks
                .procs
                .values()
                .filter(|p| p.tg.tgid != tg.tgid && tg.pidns.sees(&p.tg.pidns))
                .map(|p| p.tg.clone())
                .collect()
        } else {
            Vec::new()
        };
        (parent, autoreap, ns_over)
    };
    tg.timers.clear();
    tg.set_zombie(status);
    for o in ns_over {
        group_exit(&o, ExitStatus::Signaled { sig: SIGKILL, core: false });
    }
    if tg.tgid == 1 {
        // The sandbox is over: everything else dies with init.
        let others: Vec<Arc<ThreadGroup>> =
            kernel.tasks().procs.values().map(|p| p.tg.clone()).collect();
        for o in others {
            if o.tgid != 1 {
                group_exit(&o, ExitStatus::Signaled { sig: SIGKILL, core: false });
            }
        }
        kernel.finish(status);
        return;
    }
    let Some(parent) = parent else { return };
    if autoreap {
        reap(task, tg.tgid);
    } else {
        let exit_signal = tg.lock().exit_signal;
        if exit_signal != 0 {
            let (code, st) = match status {
                ExitStatus::Exited(c) => (CLD_EXITED, c),
                ExitStatus::Signaled { sig, core } => {
                    (if core { CLD_DUMPED } else { CLD_KILLED }, sig as i32)
                }
            };
            let info = SigInfo {
                signo: exit_signal,
                code,
                pid: tg.tgid,
                status: st,
                ..Default::default()
            };
            send_to_group(&parent, info, Origin::Sandbox);
        }
    }
    parent.child_events.notify_all();
}

/// Who adopts the children of exiting `tg`: its namespace's init, or the nearest living init
/// of an ancestor namespace when that init is `tg` or gone; None when `tg` is the sandbox's init.
fn reaper(tasks: &TaskTable, tg: &ThreadGroup) -> Option<i32> {
    tg.pidns
        .lineage()
        .filter_map(|ns| tasks.init_of(ns))
        .find(|&init| init != tg.tgid && tasks.proc(init).is_some_and(|p| !p.tg.has_exited()))
}

/// Removes a zombie from the tables and adds its usage to its parent.
fn reap(task: &Task, tgid: i32) -> Option<(ExitStatus, Usage)> {
    let mut tasks = task.kernel.tasks();
    let info = tasks.procs.remove(&tgid)?;
    if let Some(p) = tasks.proc_mut(info.parent) {
        p.children.remove(&tgid);
    }
    let parent_tg = tasks.proc(info.parent).map(|p| p.tg.clone());
    drop(tasks);
    let (status, usage) = {
        let st = info.tg.lock();
        let mut u = st.usage;
        u.add(&st.children_usage);
        (st.zombie?, u)
    };
    if let Some(p) = parent_tg {
        p.lock().children_usage.add(&usage);
    }
    Some((status, usage))
}

/// Which children a wait is for.
#[derive(Clone, Copy, Debug)]
pub enum WaitFor {
    Any,
    Pid(i32),
    Pgid(i32),
}

/// What a wait found.
#[derive(Clone, Copy, Debug)]
pub struct WaitResult {
    pub pid: i32,
    /// The wait(2) status word.
    pub status: i32,
    /// waitid's si_code and si_status.
    pub code: i32,
    pub si_status: i32,
    pub usage: Usage,
}

pub fn wait(task: &Arc<Task>, who: WaitFor, options: u32) -> Result<Option<WaitResult>, Errno> {
    let tg = task.tg();
    loop {
        let _reg = tg.child_events.register(&task.waker, Events::ALL);
        let candidates: Vec<(i32, Arc<ThreadGroup>)> = {
            let tasks = task.kernel.tasks();
            let me = tasks.proc(tg.tgid).ok_or(Errno::ECHILD)?;
            me.children
                .iter()
                .filter_map(|c| tasks.proc(*c).map(|p| (*c, p)))
                .filter(|(c, p)| match who {
                    WaitFor::Any => true,
                    WaitFor::Pid(pid) => *c == pid,
                    WaitFor::Pgid(g) => p.pgid == g,
                })
                .map(|(c, p)| (c, p.tg.clone()))
                .collect()
        };
        if candidates.is_empty() {
            return Err(Errno::ECHILD);
        }
        for (pid, child) in &candidates {
            let (zombie, job) = {
                let st = child.lock();
                (st.zombie, st.job_event)
            };
            if let Some(status) = zombie {
                if options & WEXITED == 0 {
                    continue;
                }
                let (code, si_status) = match status {
                    ExitStatus::Exited(c) => (CLD_EXITED, c),
                    ExitStatus::Signaled { sig, core } => {
                        (if core { CLD_DUMPED } else { CLD_KILLED }, sig as i32)
                    }
                };
                let usage = if options & WNOWAIT != 0 {
                    child.lock().usage
                } else {
                    reap(task, *pid).map(|(_, u)| u).unwrap_or_default()
                };
                return Ok(Some(WaitResult {
                    pid: *pid,
                    status: status.wait_status(),
                    code,
                    si_status,
                    usage,
                }));
            }
            match job {
                Some(JobEvent::Stopped(sig)) if options & WUNTRACED != 0 => {
                    if options & WNOWAIT == 0 {
                        child.lock().job_event = None;
                    }
                    let status = ((sig as i32) << 8) | 0x7f;
                    return Ok(Some(WaitResult {
                        pid: *pid,
                        status,
                        code: CLD_STOPPED,
                        si_status: sig as i32,
                        usage: Usage::default(),
                    }));
                }
                Some(JobEvent::Continued) if options & WCONTINUED != 0 => {
                    if options & WNOWAIT == 0 {
                        child.lock().job_event = None;
                    }
                    return Ok(Some(WaitResult {
                        pid: *pid,
                        status: 0xffff,
                        code: CLD_CONTINUED,
                        si_status: SIGCONT as i32,
                        usage: Usage::default(),
                    }));
                }
                _ => {}
            }
        }
        if options & WNOHANG != 0 {
            return Ok(None);
        }
        task.block(None)?;
    }
}
