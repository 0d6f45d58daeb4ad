//! Pausing and resuming a running machine: a gate every vCPU thread passes before entering
//! the guest, and a kick that brings a vCPU out of the guest to reach it. A pause returns
//! once every vCPU is parked, so nothing of the guest runs after it.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::exit::ExitSignal;
use crate::kick;

#[derive(Default)]
struct Gate {
    paused: bool,
    parked: usize,
    threads: Vec<libc::pthread_t>,
}

#[derive(Default)]
pub struct PauseGate {
    gate: Mutex<Gate>,
    changed: Condvar,
}

impl PauseGate {
    pub fn new() -> PauseGate {
        PauseGate::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Gate> {
        self.gate.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A vCPU thread that will pass the gate (and may be kicked).
    pub fn register(&self, thread: libc::pthread_t) {
        self.lock().threads.push(thread);
    }

    pub fn is_paused(&self) -> bool {
        self.lock().paused
    }

    /// Stops every vCPU; returns when all are parked (or after `timeout`, as an error).
    pub fn pause(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut g = self.lock();
        g.paused = true;
        while g.parked < g.threads.len() {
            for t in &g.threads {
                kick::kick(*t);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(format!("{} of {} vCPUs paused in time", g.parked, g.threads.len()));
            }
            let wait = (deadline - now).min(Duration::from_millis(5));
            g = self.changed.wait_timeout(g, wait).unwrap_or_else(|e| e.into_inner()).0;
        }
        Ok(())
    }

    /// Parks every vCPU as soon as it starts (a restored machine waiting for a resume).
    pub fn start_paused(&self) {
        self.lock().paused = true;
    }

    pub fn resume(&self) {
        self.lock().paused = false;
        self.changed.notify_all();
    }

    /// Called by a vCPU thread before entering the guest: parks while paused, until resumed
    /// or the machine ends. `before_parking` runs first, outside the gate's lock (the vCPU
    /// finishes an instruction KVM left half done, so a snapshot sees it whole).
    pub fn pass(&self, exit: &ExitSignal, before_parking: impl FnOnce()) {
        if !self.lock().paused {
            return;
        }
        before_parking();
        let mut g = self.lock();
        if !g.paused {
            return;
        }
        g.parked += 1;
        self.changed.notify_all();
        while g.paused && !exit.raised() {
            g = self
                .changed
                .wait_timeout(g, Duration::from_millis(50))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        g.parked -= 1;
    }
}
