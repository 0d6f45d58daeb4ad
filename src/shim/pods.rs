//! The sandboxes of one shim: one per pod (containerd's CRI plugin starts one shim per pod
//! sandbox and sends it all the pod's containers) or one for a standalone container. Started
//! through the CRI runtime's own handlers: `sentry`, or `microvm` when the task's runtime
//! config asks for it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use orchestrator::cri::handler::microvm::MicrovmHandler;
use orchestrator::cri::handler::sentry::SentryHandler;
use orchestrator::cri::handler::{RunningSandbox, SandboxHandler, SandboxSetup};
use orchestrator::cri::network::PodNet;

use super::config::{SandboxClass, ShimConfig};
use super::error::ShimError;

/// Sandbox directories (control socket, Sentry log) live here: a socket path must stay short.
const STATE_ROOT: &str = "/run/ringfence-shim";

pub struct Pod {
    pub sandbox: Box<dyn RunningSandbox>,
    dir: PathBuf,
}

impl Drop for Pod {
    fn drop(&mut self) {
        self.sandbox.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub struct Pods {
    exe: PathBuf,
    sentry: SentryHandler,
    /// Made for the first microVM sandbox, from its task's runtime config (a shim serves one
    /// pod, so one config).
    microvm: Mutex<Option<Arc<MicrovmHandler>>>,
    pods: Mutex<HashMap<String, Arc<Pod>>>,
    next: AtomicU32,
}

/// What a sandbox is started with besides its name.
pub struct BootSpec<'a> {
    pub hostname: &'a str,
    /// The network namespace to join (a pod's, made by CNI).
    pub netns: Option<PathBuf>,
    pub memory_limit_mib: Option<u64>,
    pub config: &'a ShimConfig,
}

impl Pods {
    /// Sandboxes started by `exe` (the `ringfence` binary: `sentry sandbox`, `sentry gofer`,
    /// and the `ringfence-vmm` beside it).
    pub fn new(exe: PathBuf) -> Pods {
        Pods {
            sentry: SentryHandler {
                sandbox: crate::cli::sentry_launcher(&exe, "sandbox"),
                gofer: crate::cli::gofer_launcher(&exe),
            },
            exe,
            microvm: Mutex::default(),
            pods: Mutex::default(),
            next: AtomicU32::new(0),
        }
    }

    fn microvm(&self, config: &ShimConfig) -> Result<Arc<MicrovmHandler>, ShimError> {
        let mut handler = self.microvm.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = handler.as_ref() {
            return Ok(h.clone());
        }
        let h = Arc::new(MicrovmHandler::new(config.microvm.handler_config(&self.exe)?)?);
        *handler = Some(h.clone());
        Ok(h)
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Pod>>> {
        self.pods.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Boots a sandbox named `key` of the class `spec.config` names.
    pub fn boot(&self, key: &str, spec: BootSpec<'_>) -> Result<Arc<Pod>, ShimError> {
        if self.map().contains_key(key) {
            return Err(ShimError::AlreadyExists(format!("sandbox {key} exists")));
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let dir = PathBuf::from(STATE_ROOT).join(format!("{}-{n}", std::process::id()));
        let network = spec.netns.map(PodNet::existing);
        let setup = SandboxSetup {
            id: key,
            dir: &dir,
            hostname: spec.hostname,
            network: network.as_ref(),
            memory_limit_mib: spec.memory_limit_mib,
            cpu: None,
            sysctls: &[],
            ipc_sysctls: &[],
        };
        let started = match spec.config.sandbox {
            SandboxClass::Sentry => self.sentry.start(&setup),
            SandboxClass::Microvm => self.microvm(spec.config)?.start(&setup),
        };
        let sandbox = started.inspect_err(|_| {
            let _ = std::fs::remove_dir_all(&dir);
        })?;
        let pod = Arc::new(Pod { sandbox, dir });
        self.map().insert(key.to_owned(), pod.clone());
        Ok(pod)
    }

    /// Whether work that outlives the tasks is under way (a microVM snapshot template being
    /// built for the node's next pods).
    pub fn background_work(&self) -> bool {
        let microvm = self.microvm.lock().unwrap_or_else(|e| e.into_inner());
        microvm.as_ref().is_some_and(|h| h.building_templates())
    }

    pub fn get(&self, key: &str) -> Option<Arc<Pod>> {
        self.map().get(key).cloned()
    }

    /// Forgets sandbox `key` and stops it.
    pub fn remove(&self, key: &str) {
        if let Some(pod) = self.map().remove(key) {
            pod.sandbox.stop();
        }
    }
}
