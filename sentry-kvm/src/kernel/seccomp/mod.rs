//! Seccomp for the sandbox's programs: strict mode and stacked classic-BPF filters
//! ([`bpf`], [`filter`]), installed by the program itself (seccomp(2), prctl) or by the runtime
//! from an OCI profile ([`oci`], [`runtime_default`]), and consulted before every system call
//! the Sentry dispatches. (The host filters confining the Sentry and Gofer processes
//! themselves are [`crate::seccomp`].)
//!
//! Not offered: user notification (SECCOMP_RET_USER_NOTIF behaves as having no listener, so
//! ENOSYS; SECCOMP_FILTER_FLAG_NEW_LISTENER is refused with EINVAL) and tracers
//! (SECCOMP_RET_TRACE also fails the call with ENOSYS, as Linux does without a tracer).

pub mod bpf;
pub mod compile;
pub mod filter;
pub mod oci;
pub mod runtime_default;

use crate::sync::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::abi::Errno;
use crate::abi::signal::{SIGKILL, SIGSYS, SYS_SECCOMP, SigInfo, Signal};
use crate::creds::caps::Capability;
use crate::kernel::signal::send::{force, group_exit};
use crate::kernel::task::Task;
use crate::kernel::thread_group::ExitStatus;
use crate::syscalls::Outcome;
use bpf::Program;
use filter::{Action, Filter, MAX_INSNS_PER_PATH, seccomp_data};

/// A task's seccomp mode.
#[derive(Clone, Debug, Default)]
pub enum Mode {
    #[default]
    Disabled,
    /// Only read, write, exit and rt_sigreturn.
    Strict,
    Filter(Arc<Filter>),
}

impl Mode {
    /// The number /proc/PID/status and PR_GET_SECCOMP report.
    pub fn number(&self) -> u32 {
        match self {
            Mode::Disabled => 0,
            Mode::Strict => 1,
            Mode::Filter(_) => 2,
        }
    }

    pub fn filters(&self) -> usize {
        match self {
            Mode::Filter(f) => f.count(),
            _ => 0,
        }
    }
}

/// A task's seccomp state. `on` mirrors `mode != Disabled` so that a task without filters
/// pays one relaxed load per system call.
#[derive(Default)]
pub struct SeccompState {
    on: AtomicBool,
    mode: Mutex<Mode>,
}

impl SeccompState {
    pub fn is_on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    pub fn mode(&self) -> Mode {
        self.mode.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, m: Mode) {
        let on = !matches!(m, Mode::Disabled);
        *self.mode.lock().unwrap_or_else(|e| e.into_inner()) = m;
        self.on.store(on, Ordering::SeqCst);
    }

    /// A new task's state: its creator's (clone, fork; execve keeps it).
    pub fn inherit(&self, parent: &SeccompState) {
        self.set(parent.mode());
    }
}

const STRICT_ALLOWED: [u64; 4] = [0, 1, 60, 15]; // read, write, exit, rt_sigreturn

pub const FLAG_TSYNC: u32 = 1;
pub const FLAG_LOG: u32 = 2;
pub const FLAG_SPEC_ALLOW: u32 = 4;
pub const FLAG_NEW_LISTENER: u32 = 8;
pub const FLAG_TSYNC_ESRCH: u32 = 16;
const FLAGS_KNOWN: u32 = 0x3f;

/// Enters strict mode.
pub fn set_strict(task: &Task) -> Result<(), Errno> {
    match task.seccomp.mode() {
        Mode::Disabled | Mode::Strict => {
            task.seccomp.set(Mode::Strict);
            Ok(())
        }
        Mode::Filter(_) => Err(Errno::EINVAL),
    }
}

/// Checks SECCOMP_SET_MODE_FILTER's flags (the first thing Linux checks).
pub fn check_flags(flags: u32) -> Result<(), Errno> {
    if flags & !FLAGS_KNOWN != 0 || flags & FLAG_NEW_LISTENER != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & FLAG_TSYNC_ESRCH != 0 && flags & FLAG_TSYNC == 0 {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// Whether the task may install a filter: with no_new_privs set, or CAP_SYS_ADMIN (so that a
/// filter cannot mislead a privileged program it later executes).
pub fn may_filter(task: &Task) -> Result<(), Errno> {
    if task.no_new_privs.load(Ordering::SeqCst) || task.creds().has_cap(Capability::SYS_ADMIN) {
        Ok(())
    } else {
        Err(Errno::EACCES)
    }
}

/// Adds a filter the task asked for: Linux's rules on privileges, flags and sizes. Returns
/// 0, or with TSYNC the id of a thread that could not be synchronised.
pub fn add_filter(task: &Task, prog: Program, flags: u32) -> Result<u64, Errno> {
    check_flags(flags)?;
    may_filter(task)?;
    let prev = match task.seccomp.mode() {
        Mode::Strict => return Err(Errno::EINVAL),
        Mode::Disabled => None,
        Mode::Filter(f) => Some(f),
    };
    let new = Arc::new(Filter { prog, prev: prev.clone() });
    if new.cost() > MAX_INSNS_PER_PATH {
        return Err(Errno::ENOMEM);
    }
    if flags & FLAG_TSYNC != 0 {
        let others: Vec<Arc<Task>> =
            task.tg().threads().into_iter().filter(|t| !std::ptr::eq(&**t, task)).collect();
        // Every other thread must run the caller's filters or fewer of them.
        for t in &others {
            let ok = match t.seccomp.mode() {
                Mode::Disabled => true,
                Mode::Strict => false,
                Mode::Filter(f) => new.descends_from(&f),
            };
            if !ok {
                return if flags & FLAG_TSYNC_ESRCH != 0 {
                    Err(Errno::ESRCH)
                } else {
                    Ok(task.pid_seen(t.tid()) as u64)
                };
            }
        }
        for t in &others {
            t.seccomp.set(Mode::Filter(new.clone()));
            // Threads must not gain privilege later through a missing no_new_privs.
            if task.no_new_privs.load(Ordering::SeqCst) {
                t.no_new_privs.store(true, Ordering::SeqCst);
            }
        }
    }
    task.seccomp.set(Mode::Filter(new));
    Ok(0)
}

/// Installs a filter on a process the runtime is starting (no privilege check: the runtime
/// decides).
pub fn install(task: &Task, prog: Program) -> Result<(), Errno> {
    let prev = match task.seccomp.mode() {
        Mode::Filter(f) => Some(f),
        _ => None,
    };
    let new = Arc::new(Filter { prog, prev });
    if new.cost() > MAX_INSNS_PER_PATH {
        return Err(Errno::ENOMEM);
    }
    task.seccomp.set(Mode::Filter(new));
    Ok(())
}

/// Applies the task's seccomp mode to system call `nr`: None lets it run; otherwise how it
/// ends instead.
pub fn enforce(task: &Arc<Task>, nr: u64, ip: u64, args: &[u64; 6]) -> Option<Outcome> {
    let action = match task.seccomp.mode() {
        Mode::Disabled => return None,
        Mode::Strict => {
            if STRICT_ALLOWED.contains(&nr) {
                return None;
            }
            return Some(kill(task, SIGKILL, false));
        }
        Mode::Filter(f) => Action::from_ret(f.evaluate(&seccomp_data(nr, ip, args))),
    };
    match action {
        Action::Allow => None,
        Action::Log => {
            tracing::info!(tid = task.tid(), nr, "seccomp: logged system call");
            None
        }
        Action::Errno(e) => Some(Outcome::Error(Errno(i32::from(e)))),
        Action::Trace(_) | Action::UserNotif => Some(Outcome::Error(Errno::ENOSYS)),
        Action::Trap(data) => {
            let info = SigInfo {
                signo: SIGSYS,
                code: SYS_SECCOMP,
                errno: i32::from(data),
                addr: ip,
                status: nr as i32,
                value: u64::from(filter::AUDIT_ARCH_X86_64),
                ..Default::default()
            };
            force(task, info);
            // The call does not run and rax keeps its number, as after Linux's rollback.
            Some(Outcome::Return(nr))
        }
        Action::KillThread => Some(kill(task, SIGSYS, false)),
        Action::KillProcess => Some(kill(task, SIGSYS, true)),
    }
}

/// Ends the calling thread, or its whole process when asked or when it is the last thread,
/// as if killed by `sig`.
fn kill(task: &Arc<Task>, sig: Signal, process: bool) -> Outcome {
    tracing::debug!(tid = task.tid(), sig, process, "seccomp: killing");
    let tg = task.tg();
    if process || tg.threads().len() <= 1 {
        group_exit(&tg, ExitStatus::Signaled { sig, core: sig == SIGSYS });
    }
    Outcome::Exit(0)
}
