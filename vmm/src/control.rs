//! What acts on a running machine from outside it (the API): pausing and resuming its vCPUs,
//! pressing keys on its keyboard.

use std::sync::{Arc, Mutex};

use crate::devices::i8042::I8042;
use crate::pause::PauseGate;

#[derive(Default)]
pub struct MachineControl {
    pub pause: PauseGate,
    keyboard: Mutex<Option<Arc<Mutex<I8042>>>>,
}

impl MachineControl {
    pub fn new() -> MachineControl {
        MachineControl::default()
    }

    pub(crate) fn attach_keyboard(&self, keyboard: Arc<Mutex<I8042>>) {
        *self.keyboard.lock().unwrap_or_else(|e| e.into_inner()) = Some(keyboard);
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
}
