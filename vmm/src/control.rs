//! What acts on a running machine from outside it (the API): pausing and resuming its vCPUs,
//! pressing keys on its keyboard, asking for a snapshot.

use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vmm_sys_util::eventfd::EventFd;

use crate::devices::i8042::I8042;
use crate::pause::PauseGate;
use crate::snapshot::CreateParams;

/// A snapshot to take, and where its outcome goes.
pub type SnapshotRequest = (CreateParams, Sender<Result<(), String>>);

/// How requests reach the machine's event loop: a channel and the eventfd that wakes it.
struct SnapshotPort {
    requests: Sender<SnapshotRequest>,
    wake: EventFd,
}

#[derive(Default)]
pub struct MachineControl {
    pub pause: PauseGate,
    keyboard: Mutex<Option<Arc<Mutex<I8042>>>>,
    snapshots: Mutex<Option<SnapshotPort>>,
}

impl MachineControl {
    pub fn new() -> MachineControl {
        MachineControl::default()
    }

    pub(crate) fn attach_keyboard(&self, keyboard: Arc<Mutex<I8042>>) {
        *self.keyboard.lock().unwrap_or_else(|e| e.into_inner()) = Some(keyboard);
    }

    pub(crate) fn attach_snapshots(&self, requests: Sender<SnapshotRequest>, wake: EventFd) {
        *self.snapshots.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(SnapshotPort { requests, wake });
    }

    /// Presses Ctrl+Alt+Del (a Linux guest reboots, or tells its init).
    pub fn send_ctrl_alt_del(&self) -> Result<(), String> {
        match &*self.keyboard.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(k) => {
                k.lock().unwrap_or_else(|e| e.into_inner()).send_ctrl_alt_del();
                Ok(())
            }
            None => Err("the machine has no keyboard yet".into()),
        }
    }

    /// Takes a snapshot of the (paused) machine on its event loop; waits up to `timeout`.
    pub fn create_snapshot(&self, params: CreateParams, timeout: Duration) -> Result<(), String> {
        let (reply, outcome) = channel();
        {
            let port = self.snapshots.lock().unwrap_or_else(|e| e.into_inner());
            let Some(port) = port.as_ref() else {
                return Err("the machine is not running yet".into());
            };
            port.requests.send((params, reply)).map_err(|_| "the machine has ended".to_string())?;
            port.wake.write(1).map_err(|e| format!("waking the machine's event loop: {e}"))?;
        }
        outcome
            .recv_timeout(timeout)
            .map_err(|_| format!("no snapshot after {} s", timeout.as_secs()))?
    }
}
