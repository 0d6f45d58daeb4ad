//! The part of the i8042 keyboard controller guests use to reset the machine: writing 0xfe
//! (pulse the reset line) to the command port 0x64.

use std::sync::Arc;

use crate::bus::BusDevice;
use crate::vm::{ExitReason, ExitSignal};

pub const PORT: u64 = 0x60;
pub const LEN: u64 = 5;
const COMMAND: u64 = 4;
const RESET: u8 = 0xfe;

pub struct I8042 {
    exit: Arc<ExitSignal>,
}

impl I8042 {
    pub fn new(exit: Arc<ExitSignal>) -> I8042 {
        I8042 { exit }
    }
}

impl BusDevice for I8042 {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        // No keyboard: status and data read as 0 (output buffer empty, input buffer free).
        data.fill(0);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if offset == COMMAND && data.first() == Some(&RESET) {
            self.exit.raise(ExitReason::Reset);
        }
    }
}
