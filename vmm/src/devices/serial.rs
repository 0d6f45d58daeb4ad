//! The 16550 UART at 0x3f8 (vm-superio), its output going to a file, a pipe or stdout, its
//! input coming from the host's stdin ([`super::serial_input`]).

use std::io::Write;

use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

use crate::bus::BusDevice;

pub const COM1_PORT: u64 = 0x3f8;
pub const COM1_LEN: u64 = 8;
pub const COM1_IRQ: u32 = 4;

/// Raises the UART's interrupt line (an irqfd registered for IRQ 4, or nothing).
pub struct IrqTrigger(pub Option<EventFd>);

impl Trigger for IrqTrigger {
    type E = std::io::Error;
    fn trigger(&self) -> Result<(), Self::E> {
        match &self.0 {
            Some(e) => e.write(1),
            None => Ok(()),
        }
    }
}

pub struct SerialDevice {
    uart: Serial<IrqTrigger, vm_superio::serial::NoEvents, Box<dyn Write + Send>>,
}

impl SerialDevice {
    pub fn new(irq: Option<EventFd>, out: Box<dyn Write + Send>) -> SerialDevice {
        SerialDevice { uart: Serial::new(IrqTrigger(irq), out) }
    }

    /// The UART of a restored machine, with its registers and receive FIFO.
    pub fn from_state(
        state: &crate::snapshot::state::SerialRegisters,
        irq: Option<EventFd>,
        out: Box<dyn Write + Send>,
    ) -> Result<SerialDevice, String> {
        let uart =
            Serial::from_state(&state.into(), IrqTrigger(irq), vm_superio::serial::NoEvents, out)
                .map_err(|e| format!("the snapshot's serial port: {e:?}"))?;
        Ok(SerialDevice { uart })
    }

    pub fn state(&self) -> crate::snapshot::state::SerialRegisters {
        self.uart.state().into()
    }

    /// How many bytes the receive FIFO can take now.
    pub fn input_room(&self) -> usize {
        self.uart.fifo_capacity()
    }

    /// Puts host input into the receive FIFO (raising the interrupt); returns what fitted.
    pub fn enqueue_input(&mut self, bytes: &[u8]) -> usize {
        match self.uart.enqueue_raw_bytes(bytes) {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!("serial input: {e:?}");
                0
            }
        }
    }
}

impl BusDevice for SerialDevice {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        if let (Some(b), Ok(off)) = (data.first_mut(), u8::try_from(offset)) {
            *b = self.uart.read(off);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if let (Some(b), Ok(off)) = (data.first(), u8::try_from(offset)) {
            if off == 0 {
                use crate::metrics::{METRICS, inc, mark_once};
                mark_once(&METRICS.first_serial_byte_us);
                inc(&METRICS.serial_bytes_out, 1);
            }
            if let Err(e) = self.uart.write(off, *b) {
                tracing::debug!("serial: {e}");
            }
            let _ = self.uart.writer_mut().flush();
        }
    }
}
