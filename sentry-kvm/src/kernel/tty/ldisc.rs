//! The line discipline between a terminal's two sides: what typed input becomes before a
//! program reads it (line editing in canonical mode, echo, signal characters) and what a
//! program's output becomes on the way to the terminal (newline translation). Pure state, no
//! locking or blocking: the pty drives it.

use std::collections::VecDeque;

use crate::abi::signal::{SIGINT, SIGQUIT, SIGTSTP, Signal};
use crate::abi::termios::*;

/// How much typed input waits for a reader before the typist is held back (Linux's n_tty
/// buffer size; a canonical line is at most this long less its newline).
pub const INPUT_MAX: usize = 4096;

/// What receiving input did besides queueing it: echo for the terminal and signals for its
/// foreground process group.
#[derive(Default, Debug, PartialEq, Eq)]
pub struct Effects {
    pub echo: Vec<u8>,
    pub signals: Vec<Signal>,
}

pub struct LineDiscipline {
    pub termios: Termios,
    /// The line being edited (canonical mode).
    line: Vec<u8>,
    /// Complete lines waiting for a reader (canonical mode); an empty one is an end of file.
    lines: VecDeque<Vec<u8>>,
    /// Bytes waiting for a reader (non-canonical mode).
    raw: VecDeque<u8>,
    /// The next byte is taken literally (VLNEXT).
    literal: bool,
}

impl Default for LineDiscipline {
    fn default() -> Self {
        LineDiscipline {
            termios: Termios::pty_default(),
            line: Vec::new(),
            lines: VecDeque::new(),
            raw: VecDeque::new(),
            literal: false,
        }
    }
}

fn is_control(c: u8) -> bool {
    (c < 0x20 && c != b'\t' && c != b'\n') || c == 0x7f
}

impl LineDiscipline {
    fn canonical(&self) -> bool {
        self.termios.lflag(ICANON)
    }

    /// Whether `c` is the (enabled) special character at `idx`.
    fn is(&self, c: u8, idx: usize) -> bool {
        let v = self.termios.cc[idx];
        v != 0 && c == v
    }

    /// Bytes queued for a reader (canonical: of complete lines).
    pub fn queued(&self) -> usize {
        if self.canonical() { self.lines.iter().map(Vec::len).sum() } else { self.raw.len() }
    }

    /// Whether a read would return at once (data or an end of file).
    pub fn readable(&self) -> bool {
        if self.canonical() { !self.lines.is_empty() } else { !self.raw.is_empty() }
    }

    /// How many more bytes of input fit.
    pub fn room(&self) -> usize {
        let held = if self.canonical() { self.queued() + self.line.len() } else { self.raw.len() };
        INPUT_MAX.saturating_sub(held)
    }

    /// Takes up to `max` bytes for a reader: one line at most in canonical mode. None when
    /// nothing waits; an empty result is an end of file.
    pub fn read(&mut self, max: usize) -> Option<Vec<u8>> {
        if self.canonical() {
            let mut line = self.lines.pop_front()?;
            if line.len() > max {
                let rest = line.split_off(max);
                self.lines.push_front(rest);
            }
            Some(line)
        } else {
            if self.raw.is_empty() {
                return None;
            }
            let n = max.min(self.raw.len());
            Some(self.raw.drain(..n).collect())
        }
    }

    /// Drops input not yet read (TCFLSH, TCSETSF, a signal character).
    pub fn flush_input(&mut self) {
        self.line.clear();
        self.lines.clear();
        self.raw.clear();
    }

    /// New attributes; input already typed carries over between the modes.
    pub fn set_termios(&mut self, t: Termios) {
        let was = self.canonical();
        self.termios = t;
        match (was, self.canonical()) {
            (true, false) => {
                let lines: Vec<u8> = self.lines.drain(..).flatten().collect();
                self.raw.extend(lines);
                self.raw.extend(self.line.drain(..));
            }
            (false, true) => self.line.extend(self.raw.drain(..)),
            _ => {}
        }
    }

    /// A program's output on its way to the terminal (OPOST processing).
    pub fn output(&self, data: &[u8]) -> Vec<u8> {
        let t = &self.termios;
        if t.oflag & OPOST == 0 || t.oflag & ONLCR == 0 {
            return data.to_vec();
        }
        let mut out = Vec::with_capacity(data.len() + data.len() / 8);
        for &c in data {
            if c == b'\n' {
                out.push(b'\r');
            }
            out.push(c);
        }
        out
    }

    fn echo(&self, c: u8, fx: &mut Effects) {
        if !self.termios.lflag(ECHO) {
            return;
        }
        if self.termios.lflag(ECHOCTL) && is_control(c) {
            fx.echo.extend([b'^', c ^ 0x40]);
        } else {
            fx.echo.extend(self.output(&[c]));
        }
    }

    /// Echoes the erasure of `c` from the line.
    fn echo_erase(&self, c: u8, fx: &mut Effects) {
        if !(self.termios.lflag(ECHO) && self.termios.lflag(ECHOE)) {
            return;
        }
        let width = if self.termios.lflag(ECHOCTL) && is_control(c) { 2 } else { 1 };
        for _ in 0..width {
            fx.echo.extend(b"\x08 \x08");
        }
    }

    fn erase_one(&mut self, fx: &mut Effects) -> Option<u8> {
        let c = self.line.pop()?;
        self.echo_erase(c, fx);
        Some(c)
    }

    /// Typed input (written to the terminal's master side). Returns how many bytes were taken:
    /// fewer than given when the input queue is full.
    pub fn receive(&mut self, input: &[u8], fx: &mut Effects) -> usize {
        let mut taken = 0;
        for &c0 in input {
            if self.room() == 0 && !(self.canonical() && self.ends_line(c0)) {
                break;
            }
            taken += 1;
            self.receive_one(c0, fx);
        }
        taken
    }

    fn ends_line(&self, c: u8) -> bool {
        c == b'\n' || c == b'\r' || self.is(c, VEOF) || self.is(c, VEOL) || self.is(c, VEOL2)
    }

    fn receive_one(&mut self, c0: u8, fx: &mut Effects) {
        let t = self.termios;
        let mut c = c0;
        if std::mem::take(&mut self.literal) {
            self.line.push(c);
            self.echo(c, fx);
            return;
        }
        if c == b'\r' {
            if t.iflag & IGNCR != 0 {
                return;
            }
            if t.iflag & ICRNL != 0 {
                c = b'\n';
            }
        } else if c == b'\n' && t.iflag & INLCR != 0 {
            c = b'\r';
        }
        if t.lflag(ISIG) {
            let sig = if self.is(c, VINTR) {
                Some(SIGINT)
            } else if self.is(c, VQUIT) {
                Some(SIGQUIT)
            } else if self.is(c, VSUSP) {
                Some(SIGTSTP)
            } else {
                None
            };
            if let Some(sig) = sig {
                if !t.lflag(NOFLSH) {
                    self.flush_input();
                }
                self.echo(c, fx);
                fx.signals.push(sig);
                return;
            }
        }
        if !self.canonical() {
            self.raw.push_back(c);
            self.echo(c, fx);
            return;
        }
        let iexten = t.lflag(IEXTEN);
        if iexten && self.is(c, VLNEXT) {
            self.literal = true;
        } else if self.is(c, VERASE) {
            self.erase_one(fx);
        } else if iexten && self.is(c, VWERASE) {
            while self.line.last().is_some_and(|b| b.is_ascii_whitespace()) {
                self.erase_one(fx);
            }
            while self.line.last().is_some_and(|b| !b.is_ascii_whitespace()) {
                self.erase_one(fx);
            }
        } else if self.is(c, VKILL) {
            if t.lflag(ECHOKE) {
                while self.erase_one(fx).is_some() {}
            } else {
                self.line.clear();
                self.echo(c, fx);
                if t.lflag(ECHOK) {
                    fx.echo.extend(self.output(b"\n"));
                }
            }
        } else if self.is(c, VEOF) {
            // The line so far goes to the reader without a newline; alone, it is an EOF.
            self.lines.push_back(std::mem::take(&mut self.line));
        } else if iexten && self.is(c, VREPRINT) {
            self.echo(c, fx);
            fx.echo.extend(self.output(b"\n"));
            let line = self.line.clone();
            for b in line {
                self.echo(b, fx);
            }
        } else if c == b'\n' || self.is(c, VEOL) || self.is(c, VEOL2) {
            self.line.push(c);
            self.lines.push_back(std::mem::take(&mut self.line));
            if t.lflag(ECHO) || (c == b'\n' && t.lflag(ECHONL)) {
                fx.echo.extend(self.output(&[c]));
            }
        } else if self.line.len() < INPUT_MAX - 1 {
            self.line.push(c);
            self.echo(c, fx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(l: &mut LineDiscipline, s: &[u8]) -> Effects {
        let mut fx = Effects::default();
        assert_eq!(l.receive(s, &mut fx), s.len());
        fx
    }

    #[test]
    fn canonical_lines_are_edited_and_echoed() {
        let mut l = LineDiscipline::default();
        let fx = typed(&mut l, b"xy\x7fz\r");
        assert_eq!(fx.echo, b"xy\x08 \x08z\r\n");
        assert_eq!(l.read(100), Some(b"xz\n".to_vec()));
        assert_eq!(l.read(100), None);
        typed(&mut l, b"abc");
        assert!(!l.readable());
        typed(&mut l, b"\x04");
        assert_eq!(l.read(2), Some(b"ab".to_vec()));
        assert_eq!(l.read(2), Some(b"c".to_vec()));
        typed(&mut l, b"\x04");
        assert_eq!(l.read(10), Some(Vec::new()));
    }

    #[test]
    fn interrupt_flushes_the_line_and_signals() {
        let mut l = LineDiscipline::default();
        let fx = typed(&mut l, b"half\x03");
        assert_eq!(fx.signals, vec![SIGINT]);
        assert!(fx.echo.ends_with(b"^C"));
        typed(&mut l, b"\n");
        assert_eq!(l.read(10), Some(b"\n".to_vec()));
    }

    #[test]
    fn raw_mode_passes_bytes_without_echo() {
        let mut l = LineDiscipline::default();
        let mut t = l.termios;
        t.lflag &= !(ICANON | ECHO | ISIG);
        t.iflag &= !ICRNL;
        l.set_termios(t);
        let fx = typed(&mut l, b"a\x03\r");
        assert_eq!(fx, Effects::default());
        assert_eq!(l.read(10), Some(b"a\x03\r".to_vec()));
    }

    #[test]
    fn output_turns_newlines_into_crlf() {
        let l = LineDiscipline::default();
        assert_eq!(l.output(b"a\nb"), b"a\r\nb");
    }

    #[test]
    fn a_full_queue_holds_input_back() {
        let mut l = LineDiscipline::default();
        let mut t = l.termios;
        t.lflag &= !ICANON;
        l.set_termios(t);
        let mut fx = Effects::default();
        assert_eq!(l.receive(&[b'x'; INPUT_MAX + 10], &mut fx), INPUT_MAX);
        assert_eq!(l.room(), 0);
    }
}
