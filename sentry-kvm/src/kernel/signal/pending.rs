//! Queues of signals waiting for delivery.

use crate::abi::signal::{SI_TIMER, SIGRTMIN, SigInfo, SigSet, Signal};

/// Standard signals coalesce (one pending instance); real-time signals queue.
#[derive(Clone, Debug, Default)]
pub struct Pending {
    queue: Vec<SigInfo>,
    set: SigSet,
}

/// Maximum queued real-time signals per queue (RLIMIT_SIGPENDING-like bound).
const MAX_QUEUED: usize = 1024;

impl Pending {
    pub fn set(&self) -> SigSet {
        self.set
    }

    pub fn has(&self, sig: Signal) -> bool {
        self.set.has(sig)
    }

    /// Queues `info`; false if it was coalesced or dropped.
    pub fn push(&mut self, info: SigInfo) -> bool {
        let sig = info.signo;
        if sig < SIGRTMIN && self.set.has(sig) {
            return false;
        }
        if self.queue.len() >= MAX_QUEUED {
            return false;
        }
        self.queue.push(info);
        self.set.add(sig);
        true
    }

    /// Whether the signal of POSIX timer `id` waits here.
    pub fn has_timer(&self, id: i32) -> bool {
        self.queue.iter().any(|i| i.code == SI_TIMER && i.timer_id == id)
    }

    /// Takes the next signal not in `blocked`.
    pub fn pop(&mut self, blocked: SigSet) -> Option<SigInfo> {
        let sig = SigSet(self.set.0 & !blocked.0).first()?;
        self.take(sig)
    }

    /// Takes the first queued instance of `sig`.
    pub fn take(&mut self, sig: Signal) -> Option<SigInfo> {
        let i = self.queue.iter().position(|i| i.signo == sig)?;
        let info = self.queue.remove(i);
        if !self.queue.iter().any(|i| i.signo == sig) {
            self.set.remove(sig);
        }
        Some(info)
    }

    /// Drops every instance of `sig` (it became ignored, or SIGCONT/stop interplay).
    pub fn discard(&mut self, sig: Signal) {
        self.queue.retain(|i| i.signo != sig);
        self.set.remove(sig);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::signal::{SIGINT, SIGUSR1};

    #[test]
    fn standard_signals_coalesce_and_rt_signals_queue() {
        let mut p = Pending::default();
        assert!(p.push(SigInfo::kernel(SIGINT)));
        assert!(!p.push(SigInfo::kernel(SIGINT)));
        assert!(p.push(SigInfo::kernel(SIGRTMIN + 1)));
        assert!(p.push(SigInfo::kernel(SIGRTMIN + 1)));
        assert_eq!(p.pop(SigSet::EMPTY).map(|i| i.signo), Some(SIGINT));
        assert_eq!(p.pop(SigSet::EMPTY).map(|i| i.signo), Some(SIGRTMIN + 1));
        assert!(p.has(SIGRTMIN + 1));
        assert_eq!(p.pop(SigSet::EMPTY).map(|i| i.signo), Some(SIGRTMIN + 1));
        assert!(p.pop(SigSet::EMPTY).is_none());
    }

    #[test]
    fn a_timers_queued_signal_is_found_by_its_id() {
        let mut p = Pending::default();
        let timer =
            |id| SigInfo { signo: SIGUSR1, code: SI_TIMER, timer_id: id, ..Default::default() };
        p.push(timer(2));
        assert!(p.has_timer(2));
        assert!(!p.has_timer(1));
        p.pop(SigSet::EMPTY);
        assert!(!p.has_timer(2));
    }

    #[test]
    fn blocked_signals_stay_pending() {
        let mut p = Pending::default();
        p.push(SigInfo::kernel(SIGUSR1));
        assert!(p.pop(SigSet::of(SIGUSR1)).is_none());
        assert!(p.has(SIGUSR1));
    }
}
