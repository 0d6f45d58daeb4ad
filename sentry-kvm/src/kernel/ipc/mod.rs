//! System V IPC: a sandbox is one IPC namespace, holding its shared memory segments
//! ([`shm`]), semaphore sets ([`sem`]) and message queues ([`msg`]) under the limits that
//! /proc/sys/kernel shows ([`limits`]); ids, keys and permissions work alike for all three
//! ([`perm`]).

pub mod limits;
pub mod msg;
pub mod perm;
pub mod proc;
pub mod sem;
pub mod shm;

use crate::sync::{Mutex, MutexGuard};

use limits::IpcLimits;

#[derive(Default)]
pub struct IpcNamespace {
    limits: Mutex<IpcLimits>,
    pub shm: shm::ShmRegistry,
    pub sem: sem::SemRegistry,
    pub msg: msg::MsgRegistry,
}

impl IpcNamespace {
    pub fn new(limits: IpcLimits) -> IpcNamespace {
        IpcNamespace { limits: Mutex::new(limits), ..Default::default() }
    }

    /// A copy of the current limits.
    pub fn limits(&self) -> IpcLimits {
        *self.limits_mut()
    }

    pub fn limits_mut(&self) -> MutexGuard<'_, IpcLimits> {
        self.limits.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A process is gone: its SEM_UNDO adjustments are applied and, with shm_rmid_forced,
    /// the segments it created that nothing is attached to are destroyed.
    pub fn process_exited(&self, tgid: i32) {
        self.sem.exit(tgid);
        if self.limits().shm_rmid_forced != 0 {
            self.shm.destroy_orphans(|creator| creator == tgid);
        }
    }
}
