//! One task as the shim keeps it: the container (its bundle, root filesystem and what to
//! launch), the sandbox it runs in, its init process and its execs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use orchestrator::cri::handler::{FileSpec, MountSpec, PidNamespace, ProcessSpec, RootfsPolicy};

use super::bundle::Role;
use super::error::ShimError;
use super::pods::Pod;
use super::process::Process;

/// What the container's init runs, prepared at Create from the bundle.
pub struct Launch {
    pub process: ProcessSpec,
    pub files: Vec<FileSpec>,
    pub mounts: Vec<MountSpec>,
    pub policy: RootfsPolicy,
    pub pid_namespace: PidNamespace,
    /// `linux.resources.memory.limit`, bytes.
    pub memory_limit: Option<u64>,
}

pub struct Container {
    pub id: String,
    pub bundle: String,
    pub role: Role,
    pub pod: Arc<Pod>,
    /// Where containerd's rootfs mounts were mounted (by the shim, when `mounted`).
    pub rootfs: PathBuf,
    pub mounted: bool,
    /// `None` for a pod's sandbox container, which runs nothing of its own.
    pub launch: Option<Launch>,
    pub init: Arc<Process>,
    pub execs: Mutex<HashMap<String, Arc<Process>>>,
    /// Paused by containerd (its processes run no code until resumed).
    pub paused: AtomicBool,
}

impl Container {
    /// The init (empty `exec_id`) or an exec.
    pub fn process(&self, exec_id: &str) -> Result<Arc<Process>, ShimError> {
        if exec_id.is_empty() {
            return Ok(self.init.clone());
        }
        self.execs_map()
            .get(exec_id)
            .cloned()
            .ok_or_else(|| ShimError::NotFound(format!("exec {exec_id} of {}", self.id)))
    }

    pub fn execs_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Process>>> {
        self.execs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The host process that is the container's sandbox (what containerd shows as its pid).
    pub fn pid(&self) -> u32 {
        self.pod.sandbox.pid().unwrap_or(0)
    }
}
