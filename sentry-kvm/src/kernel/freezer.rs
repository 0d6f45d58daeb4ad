//! Pausing a container's processes and resuming them (containerd's pause/resume; the cgroup
//! freezer's semantics): a frozen container's tasks run no application code until it thaws.
//! Tasks in application code are kicked out of it; tasks blocked in a system call finish it
//! (or are interrupted and restart it) and then park before returning to the application. A
//! fatal signal still ends a frozen task. No signal, stop or wait(2) event shows the pause.
//!
//! A container is known by the mount its tasks have as their root (as the sandbox's stats
//! count it), so processes it forks while a freeze is under way park too.

use crate::sync::Mutex;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::kernel::task::Task;
use crate::waiter::{Events, WaitQueue};

#[derive(Default)]
pub struct Freezer {
    /// Root mount ids of the frozen containers.
    frozen: Mutex<HashSet<u64>>,
    /// How many there are: the one thing every return to the application reads.
    count: AtomicUsize,
    thawed: WaitQueue,
}

impl Freezer {
    fn set(&self) -> crate::sync::MutexGuard<'_, HashSet<u64>> {
        self.frozen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Freezes the container whose tasks have root mount `root`; false if it already was.
    /// The caller then interrupts its tasks.
    pub fn freeze(&self, root: u64) -> bool {
        let mut set = self.set();
        let new = set.insert(root);
        self.count.store(set.len(), Ordering::SeqCst);
        new
    }

    /// Thaws it and wakes its parked tasks; false if it was not frozen.
    pub fn thaw(&self, root: u64) -> bool {
        let was = {
            let mut set = self.set();
            let was = set.remove(&root);
            self.count.store(set.len(), Ordering::SeqCst);
            was
        };
        self.thawed.notify_all();
        was
    }

    pub fn is_frozen(&self, root: u64) -> bool {
        self.count.load(Ordering::SeqCst) > 0 && self.set().contains(&root)
    }

    /// Whether any container is frozen (cheap: read before every return to the application).
    pub fn active(&self) -> bool {
        self.count.load(Ordering::SeqCst) > 0
    }
}

/// Blocks `task` while its container is frozen; returns at once otherwise, when it thaws, or
/// when the task must exit.
pub fn park(task: &Arc<Task>) {
    let freezer = &task.kernel.freezer;
    let root = task.fs().root().mount.id;
    if !freezer.is_frozen(root) {
        return;
    }
    let reg = freezer.thawed.register(&task.waker, Events::ALL);
    while freezer.is_frozen(root) && !task.exiting.load(Ordering::SeqCst) {
        task.waker.set_interrupt(false);
        let _ = task.waker.block(Some(Instant::now() + Duration::from_millis(200)));
    }
    drop(reg);
    // What arrived meanwhile (a signal) is delivered on the way back to the application.
    task.recalc_interrupt();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_freeze_and_thaw_independently() {
        let f = Freezer::default();
        assert!(!f.active());
        assert!(f.freeze(7));
        assert!(!f.freeze(7));
        assert!(f.freeze(9));
        assert!(f.is_frozen(7) && f.is_frozen(9) && !f.is_frozen(8));
        assert!(f.thaw(7));
        assert!(!f.thaw(7));
        assert!(!f.is_frozen(7) && f.is_frozen(9) && f.active());
        assert!(f.thaw(9));
        assert!(!f.active());
    }
}
