//! What every task of a sandbox is doing, for finding a hang: which system call it is in and
//! for how long, or that it runs application code, is parked, stopped or exiting, with its
//! pending and blocked signals. Asked for with a signal to the Sentry process (see the CLI's
//! `sentry run`), so it works on a wedged sandbox: it only reads atomics and *tries* locks,
//! printing `locked` for state someone holds (which is itself the clue to a deadlock).

use crate::sync::{Mutex, MutexGuard};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, TryLockError};
use std::time::Instant;

use crate::kernel::Kernel;
use crate::kernel::task::Task;

/// Where a task is: a system call (its number + 1; 0 when in application code) since when.
#[derive(Default)]
pub struct Activity {
    syscall: AtomicU64,
    since_us: AtomicU64,
}

impl Activity {
    pub fn enter(&self, nr: u64, boot: Instant) {
        self.since_us.store(boot.elapsed().as_micros() as u64, Ordering::Relaxed);
        self.syscall.store(nr.saturating_add(1), Ordering::Relaxed);
    }

    pub fn leave(&self) {
        self.syscall.store(0, Ordering::Relaxed);
    }

    fn describe(&self, boot: Instant) -> String {
        match self.syscall.load(Ordering::Relaxed) {
            0 => "application code (or between system calls)".to_owned(),
            n => {
                let nr = n - 1;
                let name = crate::syscalls::table::lookup(nr).map_or("?", |e| e.name);
                let since = self.since_us.load(Ordering::Relaxed);
                let now = boot.elapsed().as_micros() as u64;
                format!("in {name}({nr}) for {} ms", now.saturating_sub(since) / 1000)
            }
        }
    }
}

/// The lock if nobody holds it (a poisoned one too): how diagnostics read a possibly wedged
/// sandbox without joining its wait.
pub(super) fn try_lock<T>(m: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match m.try_lock() {
        Ok(g) => Some(g),
        Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

fn try_read<T, R>(m: &Mutex<T>, f: impl FnOnce(&T) -> R) -> Option<R> {
    try_lock(m).map(|g| f(&g))
}

fn task_line(t: &Arc<Task>, boot: Instant) -> String {
    let comm = try_read(&t.comm, |c| String::from_utf8_lossy(c).into_owned())
        .unwrap_or_else(|| "(name locked)".into());
    let signals =
        try_read(&t.sig, |s| format!("pending {:#x} blocked {:#x}", s.pending.set().0, s.mask.0))
            .unwrap_or_else(|| "signal state locked".into());
    let group = t.try_tg().map(|tg| {
        let tgid = tg.tgid;
        match tg.try_lock() {
            Some(st) => {
                let mut flags = String::new();
                if st.stopped {
                    flags.push_str(", stopped");
                }
                if st.group_exit.is_some() {
                    flags.push_str(", group exiting");
                }
                format!("process {tgid}{flags}")
            }
            None => format!("process {tgid} (its state locked)"),
        }
    });
    let exiting = if t.exiting.load(Ordering::Relaxed) { ", exiting" } else { "" };
    format!(
        "  task {} {comm:?} ({}{exiting}): {}; {signals}",
        t.tid(),
        group.unwrap_or_else(|| "process locked".into()),
        t.activity.describe(boot),
    )
}

/// One line per task, sorted by thread id.
pub fn dump(kernel: &Kernel) -> String {
    let Some(mut tasks) =
        try_read(&kernel.tasks, |table| table.threads.values().cloned().collect::<Vec<_>>())
    else {
        return "Sentry tasks: the task table is locked (a thread holding it is stuck)\n".into();
    };
    tasks.sort_by_key(|t| t.tid());
    let mut out = format!("Sentry tasks ({}):\n", tasks.len());
    for t in &tasks {
        out.push_str(&task_line(t, kernel.boot));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_names_the_system_call_and_how_long() {
        let boot = Instant::now();
        let a = Activity::default();
        assert!(a.describe(boot).starts_with("application code"));
        a.enter(61, boot);
        assert!(a.describe(boot).starts_with("in wait4(61) for "), "{}", a.describe(boot));
        a.leave();
        assert!(a.describe(boot).starts_with("application code"));
        let m = Mutex::new(5);
        let held = m.lock().unwrap();
        assert_eq!(try_read(&m, |v| *v), None);
        drop(held);
        assert_eq!(try_read(&m, |v| *v), Some(5));
    }
}
