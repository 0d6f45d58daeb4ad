//! PID namespaces (pid_namespaces(7)): a tree of namespaces in which every process and thread
//! has one id per level, from its own namespace up to the sandbox's root. The kernel's tables
//! are keyed by the root namespace's ids (the "global" ids); every id that crosses the syscall
//! ABI is translated into the caller's namespace here, so a task never names, sees or signals
//! one outside it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::abi::Errno;

/// How deep namespaces nest, as Linux allows (32 levels below the root).
pub const MAX_LEVEL: u32 = 32;

/// Ids within one namespace run from 1 to this (Linux's default pid_max).
const PID_MAX: i32 = 4_194_304;

static NEXT_NS: AtomicU64 = AtomicU64::new(1);

/// One namespace: its place in the tree. The ids it gives out live in the task table
/// ([`Numbers`]), under the table's lock.
#[derive(Debug)]
pub struct PidNamespace {
    id: u64,
    parent: Option<Arc<PidNamespace>>,
    level: u32,
    /// Set once its init has exited: no process may join any more (fork fails with ENOMEM).
    ended: AtomicBool,
}

impl PidNamespace {
    /// The sandbox's root namespace: its ids are the kernel's own.
    pub fn root() -> Arc<PidNamespace> {
        Arc::new(PidNamespace {
            id: NEXT_NS.fetch_add(1, Ordering::Relaxed),
            parent: None,
            level: 0,
            ended: AtomicBool::new(false),
        })
    }

    /// A new namespace below this one (ENOSPC past [`MAX_LEVEL`], as Linux).
    pub fn new_child(self: &Arc<Self>) -> Result<Arc<PidNamespace>, Errno> {
        if self.level >= MAX_LEVEL {
            return Err(Errno::ENOSPC);
        }
        Ok(Arc::new(PidNamespace {
            id: NEXT_NS.fetch_add(1, Ordering::Relaxed),
            parent: Some(self.clone()),
            level: self.level + 1,
            ended: AtomicBool::new(false),
        }))
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn level(&self) -> u32 {
        self.level
    }

    /// Records that its init has exited.
    pub fn end(&self) {
        self.ended.store(true, Ordering::Relaxed);
    }

    /// Whether it, or a namespace above it, has lost its init.
    pub fn has_ended(&self) -> bool {
        self.lineage().any(|n| n.ended.load(Ordering::Relaxed))
    }

    pub fn is_root(&self) -> bool {
        self.parent.is_none()
    }

    /// This namespace and its ancestors, innermost first.
    pub fn lineage(&self) -> impl Iterator<Item = &PidNamespace> {
        std::iter::successors(Some(self), |n| n.parent.as_deref())
    }

    /// Whether tasks of `other` are visible here: `other` is this namespace or below it.
    pub fn sees(&self, other: &PidNamespace) -> bool {
        other.lineage().any(|n| n.id == self.id)
    }
}

/// The ids a non-root namespace has given out, both ways, and its init.
#[derive(Debug, Default)]
pub struct Numbers {
    last: i32,
    to_global: HashMap<i32, i32>,
    to_local: HashMap<i32, i32>,
    /// The global id of the namespace's first process (its init, local id 1).
    pub init: Option<i32>,
}

impl Numbers {
    pub fn local(&self, global: i32) -> Option<i32> {
        self.to_local.get(&global).copied()
    }

    pub fn global(&self, local: i32) -> Option<i32> {
        self.to_global.get(&local).copied()
    }

    /// Gives `global` the next free local id; `in_use` says whether a global id still names
    /// a thread, process, group or session (a local id whose global is free is free too).
    pub fn assign(&mut self, global: i32, in_use: impl Fn(i32) -> bool) -> Result<i32, Errno> {
        for _ in 0..PID_MAX {
            self.last = if self.last >= PID_MAX - 1 { 1 } else { self.last + 1 };
            let local = self.last;
            match self.to_global.get(&local) {
                Some(&g) if in_use(g) => continue,
                Some(&g) => {
                    self.to_local.remove(&g);
                }
                None => {}
            }
            self.to_global.insert(local, global);
            self.to_local.insert(global, local);
            if local == 1 && self.init.is_none() {
                self.init = Some(global);
            }
            return Ok(local);
        }
        Err(Errno::EAGAIN)
    }

    /// Whether it names no one any more.
    pub fn is_empty(&self) -> bool {
        self.to_global.is_empty()
    }

    /// Forgets `global` (about to be given out again by the root).
    pub fn forget(&mut self, global: i32) {
        if let Some(l) = self.to_local.remove(&global) {
            self.to_global.remove(&l);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_see_themselves_and_below_only() {
        let root = PidNamespace::root();
        let a = root.new_child().unwrap();
        let b = root.new_child().unwrap();
        let a1 = a.new_child().unwrap();
        assert!(root.sees(&a1) && a.sees(&a1) && a1.sees(&a1));
        assert!(!a1.sees(&a) && !b.sees(&a1) && !a.sees(&b) && !a.sees(&root));
        assert_eq!(a1.lineage().map(|n| n.level()).collect::<Vec<_>>(), vec![2, 1, 0]);
        let mut deep = root.clone();
        for _ in 0..MAX_LEVEL {
            deep = deep.new_child().unwrap();
        }
        assert_eq!(deep.new_child().unwrap_err(), Errno::ENOSPC);
    }

    #[test]
    fn local_ids_start_at_one_and_skip_ids_still_in_use() {
        let mut n = Numbers::default();
        assert_eq!(n.assign(40, |_| true), Ok(1));
        assert_eq!(n.init, Some(40));
        assert_eq!(n.assign(41, |_| true), Ok(2));
        assert_eq!((n.local(41), n.global(2), n.local(7)), (Some(2), Some(41), None));
        // After wrapping, a local id whose global is gone is reused; a live one is skipped.
        n.last = PID_MAX - 1;
        assert_eq!(n.assign(50, |g| g == 40), Ok(2));
        assert_eq!((n.local(41), n.global(2)), (None, Some(50)));
        n.last = PID_MAX - 1;
        assert_eq!(n.assign(51, |g| g == 40 || g == 50), Ok(3));
        assert_eq!(n.init, Some(40), "init stays the first process");
        n.forget(50);
        assert_eq!((n.local(50), n.global(2)), (None, None));
    }
}
