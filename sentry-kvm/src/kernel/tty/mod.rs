//! Terminals: pseudo-terminal pairs ([`pty`]) with their line discipline ([`ldisc`]), the
//! devpts filesystem that names them ([`devpts`]: /dev/ptmx, /dev/pts/N) and /dev/tty.
//! Job control (controlling terminals, foreground process groups) lives on the pty;
//! [`host_relay`] joins a pty to host descriptors (a runtime's terminal sessions).

pub mod devpts;
pub mod host_relay;
pub mod ldisc;
pub mod pty;

use std::sync::Weak;

use crate::abi::signal::{SigInfo, Signal};
use crate::kernel::Kernel;
use crate::kernel::signal::send::{Origin, send_to_group};

/// The terminal ioctls (asm-generic/ioctls.h).
pub mod ioctl {
    pub const TCGETS: u32 = 0x5401;
    pub const TCSETS: u32 = 0x5402;
    pub const TCSETSW: u32 = 0x5403;
    pub const TCSETSF: u32 = 0x5404;
    pub const TCSBRK: u32 = 0x5409;
    pub const TCXONC: u32 = 0x540a;
    pub const TCFLSH: u32 = 0x540b;
    pub const TIOCEXCL: u32 = 0x540c;
    pub const TIOCNXCL: u32 = 0x540d;
    pub const TIOCSCTTY: u32 = 0x540e;
    pub const TIOCGPGRP: u32 = 0x540f;
    pub const TIOCSPGRP: u32 = 0x5410;
    pub const TIOCOUTQ: u32 = 0x5411;
    pub const TIOCGWINSZ: u32 = 0x5413;
    pub const TIOCSWINSZ: u32 = 0x5414;
    pub const FIONREAD: u32 = 0x541b;
    pub const TIOCNOTTY: u32 = 0x5422;
    pub const TIOCGSID: u32 = 0x5429;
    pub const TIOCGPTN: u32 = 0x8004_5430;
    pub const TIOCSPTLCK: u32 = 0x4004_5431;
    pub const TIOCGPTLCK: u32 = 0x8004_5439;
    pub const TIOCGPTPEER: u32 = 0x5441;
}

/// Sends `sig` to every process of process group `pgid`, as a terminal does (^C, SIGWINCH,
/// hang-ups). Called with no terminal lock held.
pub(crate) fn signal_group(kernel: &Weak<Kernel>, pgid: i32, sig: Signal) {
    let Some(k) = kernel.upgrade() else { return };
    let members = k.tasks().group_members(pgid);
    for tg in members {
        send_to_group(&tg, SigInfo::kernel(sig), Origin::Sandbox);
    }
}
