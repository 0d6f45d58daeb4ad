//! Why a machine ends, and the one place that reason is given: an [`ExitSignal`] that any part
//! of the machine (a vCPU, the i8042's reset line, a signal handler) raises and the event loop
//! watches through its eventfd. Knows nothing of the machine itself.

use std::sync::{Arc, Mutex};

use event_manager::{EventOps, Events, MutEventSubscriber};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::eventfd::EventFd;

/// Why a machine ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitReason {
    /// The guest reset the machine (i8042, or a reboot request): the normal end of a microVM.
    Reset,
    /// The guest powered off.
    Shutdown,
    /// The (only) vCPU halted with nothing left to wake it.
    Halt,
    /// A signal asked the VMM to stop.
    Signal(i32),
    /// The guest did something the machine cannot go on from.
    GuestFault(String),
    VmmError(String),
}

impl ExitReason {
    /// The VMM process's exit status for this ending.
    pub fn exit_code(&self) -> i32 {
        match self {
            ExitReason::Reset | ExitReason::Shutdown | ExitReason::Halt => 0,
            ExitReason::VmmError(_) => 1,
            ExitReason::GuestFault(_) => 3,
            ExitReason::Signal(s) => 128 + s,
        }
    }
}

/// The first reason anyone gives for ending the machine, and an eventfd the event loop
/// watches.
pub struct ExitSignal {
    reason: Mutex<Option<ExitReason>>,
    evt: EventFd,
}

impl ExitSignal {
    pub fn new() -> std::io::Result<Arc<ExitSignal>> {
        Ok(Arc::new(ExitSignal {
            reason: Mutex::new(None),
            evt: EventFd::new(libc::EFD_NONBLOCK)?,
        }))
    }

    pub fn raise(&self, reason: ExitReason) {
        let mut r = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        if r.is_none() {
            tracing::info!("machine ending: {reason:?}");
            *r = Some(reason);
        }
        let _ = self.evt.write(1);
    }

    pub fn raised(&self) -> bool {
        self.reason.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    pub(crate) fn reason(&self) -> Option<ExitReason> {
        self.reason.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Watches the exit eventfd for the event loop.
pub(crate) struct ExitWatcher(pub Arc<ExitSignal>);

impl MutEventSubscriber for ExitWatcher {
    fn process(&mut self, _events: Events, _ops: &mut EventOps) {
        let _ = self.0.evt.read();
    }

    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::new(&self.0.evt, EventSet::IN)) {
            self.0.raise(ExitReason::VmmError(format!("event loop: {e:?}")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_reason_wins_and_wakes_the_loop() {
        let exit = ExitSignal::new().unwrap();
        assert!(!exit.raised());
        exit.raise(ExitReason::Reset);
        exit.raise(ExitReason::Signal(15));
        assert_eq!(exit.reason(), Some(ExitReason::Reset));
        assert!(exit.evt.read().unwrap() >= 1);
        assert_eq!(ExitReason::Signal(15).exit_code(), 143);
    }
}
