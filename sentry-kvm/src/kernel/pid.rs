//! The task table: pid allocation, the process tree, process groups and sessions.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::abi::Errno;
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

#[derive(Default)]
pub struct TaskTable {
    last: i32,
    pub threads: HashMap<i32, Arc<Task>>,
    pub procs: HashMap<i32, ProcInfo>,
}

impl TaskTable {
    /// The next free id, used for both threads and processes.
    pub fn alloc_id(&mut self) -> Result<i32, Errno> {
        for _ in 0..PID_MAX {
            self.last = if self.last >= PID_MAX - 1 { 1 } else { self.last + 1 };
            let id = self.last;
            let in_use = self.threads.contains_key(&id)
                || self.procs.contains_key(&id)
                || self.procs.values().any(|p| p.pgid == id || p.sid == id);
            if !in_use {
                return Ok(id);
            }
        }
        Err(Errno::EAGAIN)
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
