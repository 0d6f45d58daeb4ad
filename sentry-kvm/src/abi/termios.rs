//! Terminal attributes as the tty ioctls carry them: `struct termios` (the kernel's 36-byte
//! layout that TCGETS/TCSETS use) and `struct winsize`.

/// Input modes.
pub const IGNCR: u32 = 0o200;
pub const ICRNL: u32 = 0o400;
pub const INLCR: u32 = 0o100;
pub const IXON: u32 = 0o2000;
/// Output modes.
pub const OPOST: u32 = 0o1;
pub const ONLCR: u32 = 0o4;
/// Control modes.
pub const CS8: u32 = 0o60;
pub const CREAD: u32 = 0o200;
pub const B38400: u32 = 0o17;
/// Local modes.
pub const ISIG: u32 = 0o1;
pub const ICANON: u32 = 0o2;
pub const ECHO: u32 = 0o10;
pub const ECHOE: u32 = 0o20;
pub const ECHOK: u32 = 0o40;
pub const ECHONL: u32 = 0o100;
pub const NOFLSH: u32 = 0o200;
pub const TOSTOP: u32 = 0o400;
pub const ECHOCTL: u32 = 0o1000;
pub const ECHOKE: u32 = 0o4000;
pub const IEXTEN: u32 = 0o100000;

/// Indices into `cc`.
pub const VINTR: usize = 0;
pub const VQUIT: usize = 1;
pub const VERASE: usize = 2;
pub const VKILL: usize = 3;
pub const VEOF: usize = 4;
pub const VTIME: usize = 5;
pub const VMIN: usize = 6;
pub const VSTART: usize = 8;
pub const VSTOP: usize = 9;
pub const VSUSP: usize = 10;
pub const VEOL: usize = 11;
pub const VREPRINT: usize = 12;
pub const VDISCARD: usize = 13;
pub const VWERASE: usize = 14;
pub const VLNEXT: usize = 15;
pub const VEOL2: usize = 16;
pub const NCCS: usize = 19;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Termios {
    pub iflag: u32,
    pub oflag: u32,
    pub cflag: u32,
    pub lflag: u32,
    pub line: u8,
    pub cc: [u8; NCCS],
}

impl Termios {
    pub const SIZE: usize = 36;

    /// What a new pseudo-terminal starts with (cooked mode, as Linux sets up a pty).
    pub fn pty_default() -> Termios {
        let mut cc = [0u8; NCCS];
        for (i, v) in [
            (VINTR, 0x03),
            (VQUIT, 0x1c),
            (VERASE, 0x7f),
            (VKILL, 0x15),
            (VEOF, 0x04),
            (VMIN, 1),
            (VSTART, 0x11),
            (VSTOP, 0x13),
            (VSUSP, 0x1a),
            (VREPRINT, 0x12),
            (VDISCARD, 0x0f),
            (VWERASE, 0x17),
            (VLNEXT, 0x16),
        ] {
            cc[i] = v;
        }
        Termios {
            iflag: ICRNL | IXON,
            oflag: OPOST | ONLCR,
            cflag: B38400 | CS8 | CREAD,
            lflag: ISIG | ICANON | ECHO | ECHOE | ECHOK | ECHOCTL | ECHOKE | IEXTEN,
            line: 0,
            cc,
        }
    }

    pub fn lflag(&self, f: u32) -> bool {
        self.lflag & f != 0
    }

    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        for (i, v) in [self.iflag, self.oflag, self.cflag, self.lflag].iter().enumerate() {
            b[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
        }
        b[16] = self.line;
        b[17..].copy_from_slice(&self.cc);
        b
    }

    pub fn from_bytes(b: &[u8; Self::SIZE]) -> Termios {
        let word =
            |i: usize| u32::from_le_bytes([b[i * 4], b[i * 4 + 1], b[i * 4 + 2], b[i * 4 + 3]]);
        let mut cc = [0u8; NCCS];
        cc.copy_from_slice(&b[17..]);
        Termios { iflag: word(0), oflag: word(1), cflag: word(2), lflag: word(3), line: b[16], cc }
    }
}

/// A terminal's size in characters (and pixels, which nothing here uses).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Winsize {
    pub rows: u16,
    pub cols: u16,
    pub xpixel: u16,
    pub ypixel: u16,
}

impl Winsize {
    pub const SIZE: usize = 8;

    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        for (i, v) in [self.rows, self.cols, self.xpixel, self.ypixel].iter().enumerate() {
            b[i * 2..i * 2 + 2].copy_from_slice(&v.to_le_bytes());
        }
        b
    }

    pub fn from_bytes(b: &[u8; Self::SIZE]) -> Winsize {
        let half = |i: usize| u16::from_le_bytes([b[i * 2], b[i * 2 + 1]]);
        Winsize { rows: half(0), cols: half(1), xpixel: half(2), ypixel: half(3) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn termios_and_winsize_round_trip() {
        let t = Termios::pty_default();
        assert_eq!(Termios::from_bytes(&t.to_bytes()), t);
        // The values Linux gives a new pty (stty -g of a fresh one).
        assert_eq!((t.iflag, t.oflag, t.cflag, t.lflag), (0x500, 0x5, 0xbf, 0x8a3b));
        let w = Winsize { rows: 24, cols: 80, xpixel: 1, ypixel: 2 };
        assert_eq!(Winsize::from_bytes(&w.to_bytes()), w);
    }
}
