//! The i8042 keyboard controller, as much of it as a Linux guest needs: the reset line
//! (0xfe on the command port, how microVMs reboot), the controller's self tests and command
//! byte, a keyboard that answers its commands, and key presses injected by the host
//! (SendCtrlAltDel) with an interrupt on IRQ 1.

use std::collections::VecDeque;
use std::sync::Arc;

use vmm_sys_util::eventfd::EventFd;

use crate::bus::BusDevice;
use crate::exit::{ExitReason, ExitSignal};

pub const PORT: u64 = 0x60;
pub const LEN: u64 = 5;
/// The keyboard's interrupt line.
pub const IRQ: u32 = 1;
const DATA: u64 = 0;
const COMMAND: u64 = 4;

// Status register.
const OUTPUT_FULL: u8 = 0x01;
const SYSTEM: u8 = 0x04;
const LAST_WAS_COMMAND: u8 = 0x08;
const UNLOCKED: u8 = 0x10;

// Controller command byte.
const KBD_INTERRUPT: u8 = 0x01;
const CTR_SYSTEM: u8 = 0x04;
const KBD_DISABLED: u8 = 0x10;
const AUX_DISABLED: u8 = 0x20;

// Controller commands.
const READ_CTR: u8 = 0x20;
const WRITE_CTR: u8 = 0x60;
const SELF_TEST: u8 = 0xaa;
const KBD_TEST: u8 = 0xab;
const KBD_DISABLE: u8 = 0xad;
const KBD_ENABLE: u8 = 0xae;
const AUX_DISABLE: u8 = 0xa7;
const AUX_ENABLE: u8 = 0xa8;
const READ_OUTPUT_PORT: u8 = 0xd0;
const WRITE_OUTPUT_PORT: u8 = 0xd1;
const WRITE_KBD_BUFFER: u8 = 0xd2;
const PULSE_RESET: u8 = 0xfe;

// Keyboard replies.
const ACK: u8 = 0xfa;
const SELF_TEST_OK: u8 = 0xaa;

/// Ctrl, Alt, Del pressed, in scancode set 2 (the controller does not translate).
const CTRL_ALT_DEL: [u8; 4] = [0x14, 0x11, 0xe0, 0x71];
/// Bytes the guest has not read yet; more are dropped, as a real buffer overflows.
const BUFFER: usize = 16;

pub struct I8042 {
    exit: Arc<ExitSignal>,
    /// Raises IRQ 1 (an irqfd once the machine has an interrupt controller).
    irq: EventFd,
    status: u8,
    ctr: u8,
    /// A command that takes a data byte next.
    pending: Option<u8>,
    out: VecDeque<u8>,
}

impl I8042 {
    pub fn new(exit: Arc<ExitSignal>) -> std::io::Result<I8042> {
        Ok(I8042 {
            exit,
            irq: EventFd::new(libc::EFD_NONBLOCK)?,
            status: UNLOCKED,
            ctr: KBD_INTERRUPT | CTR_SYSTEM,
            pending: None,
            out: VecDeque::with_capacity(BUFFER),
        })
    }

    /// Registers and unread bytes, for a snapshot.
    pub fn state(&self) -> crate::snapshot::state::KeyboardState {
        crate::snapshot::state::KeyboardState {
            status: self.status,
            ctr: self.ctr,
            pending: self.pending,
            out: self.out.iter().copied().collect(),
        }
    }

    /// Takes a snapshot's registers (the buffer is cut to its size, as the guest never saw
    /// more).
    pub fn restore(&mut self, s: &crate::snapshot::state::KeyboardState) {
        self.status = s.status;
        self.ctr = s.ctr;
        self.pending = s.pending;
        self.out = s.out.iter().copied().take(BUFFER).collect();
    }

    pub fn irq(&self) -> &EventFd {
        &self.irq
    }

    fn push(&mut self, byte: u8) {
        if self.out.len() < BUFFER {
            self.out.push_back(byte);
        }
        self.status |= OUTPUT_FULL;
        self.interrupt();
    }

    fn interrupt(&self) {
        if self.ctr & KBD_INTERRUPT != 0
            && self.ctr & KBD_DISABLED == 0
            && let Err(e) = self.irq.write(1)
        {
            tracing::warn!("i8042: raising IRQ 1: {e}");
        }
    }

    /// Presses Ctrl+Alt+Del on the keyboard.
    pub fn send_ctrl_alt_del(&mut self) {
        for b in CTRL_ALT_DEL {
            self.push(b);
        }
    }

    fn command(&mut self, cmd: u8) {
        self.status |= LAST_WAS_COMMAND;
        match cmd {
            READ_CTR => self.push(self.ctr),
            WRITE_CTR | WRITE_OUTPUT_PORT | WRITE_KBD_BUFFER => self.pending = Some(cmd),
            SELF_TEST => self.push(0x55),
            KBD_TEST => self.push(0x00),
            KBD_DISABLE => self.ctr |= KBD_DISABLED,
            KBD_ENABLE => self.ctr &= !KBD_DISABLED,
            // There is no mouse; the flag is kept so a driver sees its command took.
            AUX_DISABLE => self.ctr |= AUX_DISABLED,
            AUX_ENABLE => self.ctr &= !AUX_DISABLED,
            READ_OUTPUT_PORT => self.push(0x01), // the reset line is not asserted
            PULSE_RESET => self.exit.raise(ExitReason::Reset),
            _ => {}
        }
    }

    fn data(&mut self, byte: u8) {
        self.status &= !LAST_WAS_COMMAND;
        match self.pending.take() {
            Some(WRITE_CTR) => {
                self.ctr = byte;
                self.status = (self.status & !SYSTEM) | (byte & CTR_SYSTEM);
            }
            // Bit 0 of the output port is the CPU's reset line, active low.
            Some(WRITE_OUTPUT_PORT) if byte & 1 == 0 => self.exit.raise(ExitReason::Reset),
            Some(WRITE_KBD_BUFFER) => self.push(byte),
            Some(_) => {}
            // A command for the keyboard itself.
            None => match byte {
                0xff => {
                    self.push(ACK);
                    self.push(SELF_TEST_OK);
                }
                0xf2 => {
                    // Identify: an MF2 keyboard.
                    self.push(ACK);
                    self.push(0xab);
                    self.push(0x83);
                }
                0xee => self.push(0xee), // echo
                _ => self.push(ACK),
            },
        }
    }
}

impl BusDevice for I8042 {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let value = match offset {
            DATA => {
                let b = self.out.pop_front().unwrap_or(0);
                if self.out.is_empty() {
                    self.status &= !OUTPUT_FULL;
                } else {
                    self.interrupt();
                }
                b
            }
            COMMAND => self.status,
            _ => 0,
        };
        data.fill(0);
        if let Some(first) = data.first_mut() {
            *first = value;
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let Some(&byte) = data.first() else { return };
        match offset {
            COMMAND => self.command(byte),
            DATA => self.data(byte),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev() -> I8042 {
        I8042::new(ExitSignal::new().unwrap()).unwrap()
    }

    fn rd(d: &mut I8042, port: u64) -> u8 {
        let mut b = [0u8];
        d.read(port, &mut b);
        b[0]
    }

    #[test]
    fn a_linux_style_probe_gets_the_answers_it_expects() {
        let mut d = dev();
        assert_eq!(rd(&mut d, COMMAND) & OUTPUT_FULL, 0);
        d.write(COMMAND, &[SELF_TEST]);
        assert_ne!(rd(&mut d, COMMAND) & OUTPUT_FULL, 0);
        assert_eq!(rd(&mut d, DATA), 0x55);
        assert_eq!(rd(&mut d, COMMAND) & OUTPUT_FULL, 0);
        d.write(COMMAND, &[READ_CTR]);
        let ctr = rd(&mut d, DATA);
        d.write(COMMAND, &[WRITE_CTR]);
        d.write(DATA, &[ctr | 0x40]);
        d.write(COMMAND, &[READ_CTR]);
        assert_eq!(rd(&mut d, DATA), ctr | 0x40);
        // The keyboard answers a reset and an identify.
        d.write(DATA, &[0xff]);
        assert_eq!((rd(&mut d, DATA), rd(&mut d, DATA)), (ACK, SELF_TEST_OK));
        d.write(DATA, &[0xf2]);
        assert_eq!([rd(&mut d, DATA), rd(&mut d, DATA), rd(&mut d, DATA)], [ACK, 0xab, 0x83]);
    }

    #[test]
    fn ctrl_alt_del_raises_irq_1_unless_the_keyboard_interrupt_is_off() {
        let mut d = dev();
        d.send_ctrl_alt_del();
        assert_eq!(d.irq().read().unwrap(), 4);
        let keys: Vec<u8> = (0..4).map(|_| rd(&mut d, DATA)).collect();
        assert_eq!(keys, CTRL_ALT_DEL);
        d.write(COMMAND, &[WRITE_CTR]);
        d.write(DATA, &[0]);
        let _ = d.irq().read();
        d.send_ctrl_alt_del();
        assert!(d.irq().read().is_err(), "no interrupt with KBD_INTERRUPT clear");
        // A flood is capped at the buffer's size.
        for _ in 0..10 {
            d.send_ctrl_alt_del();
        }
        let mut n = 0;
        while rd(&mut d, COMMAND) & OUTPUT_FULL != 0 {
            rd(&mut d, DATA);
            n += 1;
        }
        assert_eq!(n, BUFFER);
    }

    #[test]
    fn the_reset_line_ends_the_machine() {
        let exit = ExitSignal::new().unwrap();
        let mut d = I8042::new(exit.clone()).unwrap();
        d.write(COMMAND, &[WRITE_OUTPUT_PORT]);
        d.write(DATA, &[0x01]);
        assert!(!exit.raised());
        d.write(COMMAND, &[PULSE_RESET]);
        assert!(exit.raised());
    }
}
