//! The task table: pid allocation, the process tree, process groups and sessions. Its ids are
//! the root PID namespace's; [`pid_ns`](crate::kernel::pid_ns) gives every other namespace's.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::abi::Errno;
use crate::kernel::pid_ns::{Numbers, PidNamespace};
use crate::kernel::task::Task;
use crate::kernel::thread_group::ThreadGroup;

const PID_MAX: i32 = 4_194_304;

pub struct ProcInfo {
    pub tg: Arc<ThreadGroup>,
    /// 0 for the init process.
    pub parent: i32,
    pub children: BTreeSet<i32>,
    pub pgid: i32,
    pub sid: i32,
}

pub struct TaskTable {
    last: i32,
    pub threads: HashMap<i32, Arc<Task>>,
    pub procs: HashMap<i32, ProcInfo>,
    /// The sandbox's root PID namespace.
    pub root_ns: Arc<PidNamespace>,
    /// The ids of every other namespace, by namespace id.
    numbers: HashMap<u64, Numbers>,
}

impl Default for TaskTable {
    fn default() -> Self {
        TaskTable {
            last: 0,
            threads: HashMap::new(),
            procs: HashMap::new(),
            root_ns: PidNamespace::root(),
            numbers: HashMap::new(),
        }
    }
}

/// Whether global id `id` still names a thread, a process, a group or a session.
fn in_use(threads: &HashMap<i32, Arc<Task>>, procs: &HashMap<i32, ProcInfo>, id: i32) -> bool {
    threads.contains_key(&id)
        || procs.contains_key(&id)
        || procs.values().any(|p| p.pgid == id || p.sid == id)
}

impl TaskTable {
    /// The next free id for a thread or process of namespace `ns`: a global id, with an id in
    /// `ns` and in each namespace between it and the root. ENOMEM once `ns`'s init has exited.
    pub fn alloc_id(&mut self, ns: &PidNamespace) -> Result<i32, Errno> {
        if ns.has_ended() {
            return Err(Errno::ENOMEM);
        }
        let nested: Vec<u64> = ns.lineage().filter(|n| !n.is_root()).map(|n| n.id()).collect();
        let mut global = None;
        for _ in 0..PID_MAX {
            self.last = if self.last >= PID_MAX - 1 { 1 } else { self.last + 1 };
            if !in_use(&self.threads, &self.procs, self.last) {
                global = Some(self.last);
                break;
            }
        }
        let global = global.ok_or(Errno::EAGAIN)?;
        // Stale names of an id given out before (its namespaces map it to a dead task); the
        // numbers of a namespace that names no one any more go too (an ended namespace keeps
        // its end in itself).
        self.numbers.retain(|_, n| {
            n.forget(global);
            !n.is_empty()
        });
        let (threads, procs) = (&self.threads, &self.procs);
        for (i, id) in nested.iter().enumerate() {
            let numbers = self.numbers.entry(*id).or_default();
            if let Err(e) = numbers.assign(global, |g| in_use(threads, procs, g)) {
                for id in &nested[..=i] {
                    if let Some(n) = self.numbers.get_mut(id) {
                        n.forget(global);
                    }
                }
                return Err(e);
            }
        }
        Ok(global)
    }

    /// The id of global id `global` in namespace `ns`; None when it is not visible there.
    pub fn pid_in(&self, ns: &PidNamespace, global: i32) -> Option<i32> {
        if global <= 0 {
            return None;
        }
        if ns.is_root() {
            return Some(global);
        }
        self.numbers.get(&ns.id())?.local(global)
    }

    /// Like [`pid_in`](Self::pid_in), with 0 for what is not visible (as getppid, getpgid
    /// and si_pid report an id from outside the namespace).
    pub fn pid_or_zero(&self, ns: &PidNamespace, global: i32) -> i32 {
        self.pid_in(ns, global).unwrap_or(0)
    }

    /// The global id that `local` names in namespace `ns`, if any.
    pub fn global_of(&self, ns: &PidNamespace, local: i32) -> Option<i32> {
        if local <= 0 {
            return None;
        }
        if ns.is_root() {
            return Some(local);
        }
        self.numbers.get(&ns.id())?.global(local)
    }

    /// The global id of `ns`'s init (1 for the root), once it has one.
    pub fn init_of(&self, ns: &PidNamespace) -> Option<i32> {
        if ns.is_root() {
            return Some(1);
        }
        self.numbers.get(&ns.id())?.init
    }

    /// The process `local` names in `ns` (ESRCH if none is visible).
    pub fn proc_in(&self, ns: &PidNamespace, local: i32) -> Result<&ProcInfo, Errno> {
        let global = self.global_of(ns, local).ok_or(Errno::ESRCH)?;
        self.procs.get(&global).ok_or(Errno::ESRCH)
    }

    /// The thread `local` names in `ns` (ESRCH if none is visible).
    pub fn thread_in(&self, ns: &PidNamespace, local: i32) -> Result<Arc<Task>, Errno> {
        let global = self.global_of(ns, local).ok_or(Errno::ESRCH)?;
        self.threads.get(&global).cloned().ok_or(Errno::ESRCH)
    }

    /// The ids of global `global` from namespace `from` down to `own` (its own namespace),
    /// as /proc/PID/status's NSpid line lists them; empty when `from` does not see it.
    pub fn ns_ids(&self, from: &PidNamespace, own: &PidNamespace, global: i32) -> Vec<i32> {
        if !from.sees(own) {
            return Vec::new();
        }
        let mut ids: Vec<i32> = own
            .lineage()
            .take_while(|n| n.level() >= from.level())
            .map(|n| self.pid_or_zero(n, global))
            .collect();
        ids.reverse();
        ids
    }

    pub fn proc(&self, tgid: i32) -> Option<&ProcInfo> {
        self.procs.get(&tgid)
    }

    pub fn proc_mut(&mut self, tgid: i32) -> Option<&mut ProcInfo> {
        self.procs.get_mut(&tgid)
    }

    /// Live (not zombie) processes in process group `pgid`.
    pub fn group_members(&self, pgid: i32) -> Vec<Arc<ThreadGroup>> {
        self.procs
            .values()
            .filter(|p| p.pgid == pgid && p.tg.lock().zombie.is_none())
            .map(|p| p.tg.clone())
            .collect()
    }

    /// Whether any process is in process group `pgid` within session `sid`.
    pub fn group_in_session(&self, pgid: i32, sid: i32) -> bool {
        self.procs.values().any(|p| p.pgid == pgid && p.sid == sid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::thread_group::default_rlimits;

    /// Enters a process with global id `id` (its own group and session) in namespace `ns`.
    fn enter(t: &mut TaskTable, ns: &Arc<PidNamespace>) -> i32 {
        let id = t.alloc_id(ns).unwrap();
        let tg = ThreadGroup::new(id, Default::default(), default_rlimits((8, 8)), ns.clone());
        let info = ProcInfo { tg, parent: 1, children: Default::default(), pgid: id, sid: id };
        t.procs.insert(id, info);
        id
    }

    #[test]
    fn each_namespace_numbers_its_processes_from_one_and_sees_only_its_own() {
        let mut t = TaskTable::default();
        let root = t.root_ns.clone();
        let pause = enter(&mut t, &root);
        let (a, b) = (root.new_child().unwrap(), root.new_child().unwrap());
        let a1 = enter(&mut t, &a);
        let a2 = enter(&mut t, &a);
        let b1 = enter(&mut t, &b);
        assert_eq!((pause, a1, a2, b1), (1, 2, 3, 4), "global ids run on");
        assert_eq!(
            [t.pid_in(&a, a1), t.pid_in(&a, a2), t.pid_in(&b, b1)],
            [Some(1), Some(2), Some(1)]
        );
        assert_eq!((t.init_of(&a), t.init_of(&b), t.init_of(&root)), (Some(a1), Some(b1), Some(1)));
        // Neither sees the other's processes, nor the pod's; the root sees all by global id.
        assert_eq!((t.pid_in(&a, b1), t.pid_in(&b, a2), t.pid_in(&a, pause)), (None, None, None));
        assert_eq!(t.pid_or_zero(&a, pause), 0, "a parent outside reads as 0");
        assert_eq!(
            (t.global_of(&b, 2), t.global_of(&a, 2), t.global_of(&root, 3)),
            (None, Some(a2), Some(3))
        );
        assert!(t.proc_in(&b, 2).is_err() && t.proc_in(&a, 2).is_ok());
        // A nested namespace: ids at every level, listed from the reader's level down.
        let a_inner = a.new_child().unwrap();
        let n = enter(&mut t, &a_inner);
        assert_eq!(t.ns_ids(&root, &a_inner, n), vec![n, 3, 1]);
        assert_eq!(t.ns_ids(&a, &a_inner, n), vec![3, 1]);
        assert!(t.ns_ids(&b, &a_inner, n).is_empty());
    }

    #[test]
    fn a_dead_namespace_takes_no_one_and_reused_ids_lose_their_old_names() {
        let mut t = TaskTable::default();
        let root = t.root_ns.clone();
        enter(&mut t, &root);
        let a = root.new_child().unwrap();
        let a1 = enter(&mut t, &a);
        a.end();
        assert_eq!(t.alloc_id(&a), Err(Errno::ENOMEM));
        assert_eq!(t.alloc_id(&a.new_child().unwrap()), Err(Errno::ENOMEM));
        // a1 is reaped; when the root gives its id out again, `a` no longer names it.
        t.procs.remove(&a1);
        t.last = a1 - 1;
        let again = enter(&mut t, &root);
        assert_eq!(again, a1);
        assert_eq!((t.pid_in(&a, again), t.global_of(&a, 1)), (None, None));
        assert!(!t.numbers.contains_key(&a.id()), "an emptied namespace's numbers go");
        assert_eq!(t.alloc_id(&a), Err(Errno::ENOMEM), "and it stays ended");
    }
}
