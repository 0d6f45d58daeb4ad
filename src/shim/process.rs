//! One process of a task (its init or an exec) as containerd sees it: created, running,
//! stopped with an exit status; waiters block until it stops.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::SystemTime;

use orchestrator::cri::handler::ProcessSpec;

use super::stdio::{ProcessIo, StdioPaths};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Stopped,
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    /// As a shell reports it (128 + signal when killed).
    pub status: u32,
    pub at: SystemTime,
}

pub struct State {
    pub status: Status,
    /// The Sentry's handle of the running process.
    pub handle: Option<i32>,
    pub exit: Option<Exit>,
    pub io: Option<ProcessIo>,
}

pub struct Process {
    /// Empty for a task's init process.
    pub exec_id: String,
    pub stdio: StdioPaths,
    /// What an exec runs (the init's process comes from the bundle).
    pub spec: Option<ProcessSpec>,
    state: Mutex<State>,
    stopped: Condvar,
}

impl Process {
    pub fn new(exec_id: &str, stdio: StdioPaths, spec: Option<ProcessSpec>) -> Process {
        Process {
            exec_id: exec_id.to_owned(),
            stdio,
            spec,
            state: Mutex::new(State {
                status: Status::Created,
                handle: None,
                exit: None,
                io: None,
            }),
            stopped: Condvar::new(),
        }
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the exit (the first one counts); false when it had already stopped.
    pub fn stop(&self, status: u32) -> bool {
        let mut s = self.state();
        if s.status == Status::Stopped {
            return false;
        }
        s.status = Status::Stopped;
        s.exit = Some(Exit { status, at: SystemTime::now() });
        s.io = None;
        self.stopped.notify_all();
        true
    }

    /// Blocks until the process has stopped.
    pub fn wait(&self) -> Exit {
        let mut s = self.state();
        loop {
            if let Some(exit) = s.exit {
                return exit;
            }
            s = self.stopped.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn waiters_see_the_first_exit() {
        let p = Arc::new(Process::new("", StdioPaths::default(), None));
        let waiter = {
            let p = p.clone();
            std::thread::spawn(move || p.wait().status)
        };
        assert!(p.stop(3));
        assert!(!p.stop(137));
        assert_eq!(waiter.join().unwrap(), 3);
        assert_eq!(p.state().status, Status::Stopped);
    }
}
