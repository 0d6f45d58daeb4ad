//! The Sentry sandboxes of one shim: one per pod (containerd's CRI plugin starts one shim per
//! pod sandbox and sends it all the pod's containers) or one for a standalone container.
//! Started through the CRI runtime's own `sentry` handler.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use orchestrator::cri::handler::sentry::SentryHandler;
use orchestrator::cri::handler::{Launcher, RunningSandbox, SandboxHandler, SandboxSetup};
use orchestrator::cri::network::PodNet;

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
    handler: SentryHandler,
    pods: Mutex<HashMap<String, Arc<Pod>>>,
    next: AtomicU32,
}

impl Pods {
    /// Sandboxes started by `exe` (the `ringfence` binary: `sentry sandbox`, `sentry gofer`).
    pub fn new(exe: PathBuf) -> Pods {
        Pods {
            handler: SentryHandler {
                sandbox: Launcher::new(&exe, &["sentry", "sandbox"]),
                gofer: Launcher::new(&exe, &["sentry", "gofer"]),
            },
            pods: Mutex::default(),
            next: AtomicU32::new(0),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Pod>>> {
        self.pods.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Boots a sandbox named `key`, in network namespace `netns` when given.
    pub fn boot(
        &self,
        key: &str,
        hostname: &str,
        netns: Option<PathBuf>,
    ) -> Result<Arc<Pod>, ShimError> {
        if self.map().contains_key(key) {
            return Err(ShimError::AlreadyExists(format!("sandbox {key} exists")));
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let dir = PathBuf::from(STATE_ROOT).join(format!("{}-{n}", std::process::id()));
        let network = netns.map(PodNet::existing);
        let setup = SandboxSetup {
            id: key,
            dir: &dir,
            hostname,
            network: network.as_ref(),
            memory_limit_mib: None,
            cpu: None,
            sysctls: &[],
            ipc_sysctls: &[],
        };
        let sandbox = self.handler.start(&setup).inspect_err(|_| {
            let _ = std::fs::remove_dir_all(&dir);
        })?;
        let pod = Arc::new(Pod { sandbox, dir });
        self.map().insert(key.to_owned(), pod.clone());
        Ok(pod)
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
