//! A terminal on stdin put in raw mode while a human types into the guest's console (keys,
//! Ctrl-C included, go to the guest, unechoed), and put back as it was when the VMM ends.

pub struct RawTerminal {
    saved: libc::termios,
}

impl RawTerminal {
    /// Raw mode on stdin if it is a terminal; `None` (nothing changed) otherwise.
    pub fn enter() -> Option<RawTerminal> {
        // SAFETY: isatty only looks at the descriptor.
        if unsafe { libc::isatty(0) } != 1 {
            return None;
        }
        // SAFETY: a zeroed termios is a valid buffer for tcgetattr to fill.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: tcgetattr writes into `saved`, which lives across the call.
        if unsafe { libc::tcgetattr(0, &mut saved) } != 0 {
            return None;
        }
        let mut raw = saved;
        // Characters one at a time, no local echo, no signals from keys; output untouched.
        raw.c_lflag &= !(libc::ICANON | libc::ECHO | libc::ISIG | libc::IEXTEN);
        raw.c_iflag &= !(libc::ICRNL | libc::IXON);
        raw.c_cc[libc::VMIN] = 1;
        raw.c_cc[libc::VTIME] = 0;
        // SAFETY: tcsetattr reads `raw`, which lives across the call.
        if unsafe { libc::tcsetattr(0, libc::TCSANOW, &raw) } != 0 {
            return None;
        }
        Some(RawTerminal { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        // SAFETY: tcsetattr reads the termios saved by `enter`.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &self.saved) };
    }
}
