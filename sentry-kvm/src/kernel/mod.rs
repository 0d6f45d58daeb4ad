//! The Sentry's kernel: tasks, processes, signals, and the syscall-level services they use.

pub mod clone;
pub mod epoll;
pub mod eventfd;
pub mod exec;
pub mod exit;
pub mod freezer;
pub mod fs_context;
pub mod futex;
pub mod host_notifier;
pub mod ipc;
pub mod netns;
pub mod pid;
pub mod pid_ns;
pub mod pipe;
pub mod posix_timer;
pub mod procfs;
pub mod run;
pub mod seccomp;
pub mod signal;
pub mod socket;
pub mod task;
pub mod task_dump;
pub mod thread_group;
pub mod timers;
pub mod tty;
pub mod vdso;

use crate::sync::{Condvar, Mutex, MutexGuard};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::mm::Physical;
use crate::platform::Platform;
use crate::vfs::Location;
use pid::TaskTable;
use thread_group::ExitStatus;

/// Facts the sandbox reports about itself (uname, sysinfo, /proc).
#[derive(Clone, Debug)]
pub struct KernelInfo {
    pub hostname: Vec<u8>,
    pub release: &'static str,
    pub version: &'static str,
    pub cpus: u32,
    pub mem_bytes: u64,
    /// RLIMIT_NOFILE (soft, hard) that processes start with: the host's, as a container
    /// inherits its runtime's.
    pub nofile: (u64, u64),
    /// System V IPC limits the sandbox starts with (the pod's kernel.shm*/msg*/sem sysctls).
    pub ipc: ipc::limits::IpcLimits,
}

pub struct Kernel {
    pub platform: Arc<dyn Platform>,
    pub phys: Arc<Physical>,
    pub tasks: Mutex<TaskTable>,
    pub root: Location,
    pub info: Mutex<KernelInfo>,
    pub boot: Instant,
    pub boot_wall: SystemTime,
    pub futexes: futex::FutexTable,
    /// The sandbox's pseudo-terminals.
    pub devpts: Arc<tty::devpts::Devpts>,
    /// Advisory file locks (flock, POSIX and OFD record locks) of every process.
    pub locks: Arc<crate::vfs::lock::LockRegistry>,
    /// inotify watches of every process.
    pub notify: Arc<crate::vfs::notify::Notifier>,
    /// Paused containers.
    pub freezer: freezer::Freezer,
    /// System V IPC objects: the sandbox is one IPC namespace.
    pub ipc: Arc<ipc::IpcNamespace>,
    /// FPU state of a fresh vCPU, loaded on execve.
    pub clean_fpu: kvm_bindings::kvm_xsave,
    /// The vDSO every process gets (None if its pages could not be set up).
    pub vdso: Option<Arc<vdso::Vdso>>,
    unimplemented: Mutex<HashSet<u64>>,
    /// Exit status of the init process once it is gone.
    done: Mutex<Option<ExitStatus>>,
    done_cv: Condvar,
}

impl Kernel {
    pub fn new(
        platform: Arc<dyn Platform>,
        root: Location,
        info: KernelInfo,
        clean_fpu: kvm_bindings::kvm_xsave,
        time: crate::platform::kvm::tsc::TimeProbe,
    ) -> Arc<Kernel> {
        let vdso = match vdso::Vdso::new(platform.phys(), time, info.cpus) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!("no vDSO for this sandbox: {e}");
                None
            }
        };
        let ipc = Arc::new(ipc::IpcNamespace::new(info.ipc));
        Arc::new_cyclic(|me| Kernel {
            vdso,
            devpts: tty::devpts::Devpts::new(me.clone()),
            phys: platform.phys().clone(),
            platform,
            tasks: Mutex::new(TaskTable::default()),
            root,
            info: Mutex::new(info),
            boot: Instant::now(),
            boot_wall: SystemTime::now(),
            futexes: futex::FutexTable::default(),
            locks: crate::vfs::lock::LockRegistry::new(),
            notify: crate::vfs::notify::Notifier::new(crate::vfs::notify::LIMITS),
            freezer: freezer::Freezer::default(),
            ipc,
            clean_fpu,
            unimplemented: Mutex::new(HashSet::new()),
            done: Mutex::new(None),
            done_cv: Condvar::new(),
        })
    }

    pub fn tasks(&self) -> MutexGuard<'_, TaskTable> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn info(&self) -> KernelInfo {
        self.info.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Logs an unimplemented syscall the first time this sandbox meets it.
    pub fn report_unimplemented(&self, nr: u64, name: &str) {
        let first = self.unimplemented.lock().unwrap_or_else(|e| e.into_inner()).insert(nr);
        if first {
            tracing::warn!(syscall = name, nr, "unimplemented syscall: returning ENOSYS");
        }
    }

    /// Records that init has exited: the sandbox is over.
    pub fn finish(&self, status: ExitStatus) {
        let mut d = self.done.lock().unwrap_or_else(|e| e.into_inner());
        if d.is_none() {
            *d = Some(status);
        }
        self.done_cv.notify_all();
    }

    /// Waits until init exits; returns its status.
    pub fn wait_done(&self) -> ExitStatus {
        let mut d = self.done.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(s) = *d {
                return s;
            }
            d = self.done_cv.wait(d).unwrap_or_else(|e| e.into_inner());
        }
    }

    pub fn is_done(&self) -> bool {
        self.done.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }
}
