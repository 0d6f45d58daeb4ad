//! Signals: pending queues, dispositions, generation and delivery to user handlers.

pub mod deliver;
pub mod frame;
pub mod pending;
pub mod send;

use crate::abi::signal::{NSIG, SigAction};

/// Signal dispositions of a thread group (shared by its threads, or with CLONE_SIGHAND).
#[derive(Clone)]
pub struct SigHandlers {
    pub actions: [SigAction; NSIG as usize],
}

impl Default for SigHandlers {
    fn default() -> Self {
        SigHandlers { actions: [SigAction::default(); NSIG as usize] }
    }
}

impl SigHandlers {
    pub fn get(&self, sig: u32) -> SigAction {
        self.actions[(sig - 1) as usize]
    }

    pub fn set(&mut self, sig: u32, a: SigAction) {
        self.actions[(sig - 1) as usize] = a;
    }

    /// After execve: handled signals go back to default, ignored ones stay ignored.
    pub fn reset_for_exec(&mut self) {
        for a in self.actions.iter_mut() {
            if a.handler != crate::abi::signal::SIG_IGN {
                *a = SigAction::default();
            }
        }
    }
}

/// An alternate signal stack (sigaltstack).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AltStack {
    pub sp: u64,
    pub size: u64,
    pub flags: i32,
}

impl AltStack {
    pub fn contains(&self, sp: u64) -> bool {
        self.size != 0 && sp > self.sp && sp <= self.sp + self.size
    }
}
