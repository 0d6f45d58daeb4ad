//! The host's stdin typed into the guest's serial console, on the VMM's event loop. The UART
//! holds 64 bytes: when the guest has not drained them, stdin is set aside and looked at again
//! a little later, so a fast writer is slowed down rather than its input dropped.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_manager::{EventOps, Events, MutEventSubscriber};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::timerfd::TimerFd;

use super::serial::SerialDevice;

/// How long a full FIFO is left to the guest before stdin is read again.
const RETRY: Duration = Duration::from_millis(5);

pub struct SerialInput {
    input: RawFd,
    uart: Arc<Mutex<SerialDevice>>,
    /// Created before the thread is confined (timerfd_create is not allowed after).
    retry: TimerFd,
    watching: bool,
}

impl SerialInput {
    pub fn new(input: RawFd, uart: Arc<Mutex<SerialDevice>>) -> std::io::Result<SerialInput> {
        Ok(SerialInput { input, uart, retry: TimerFd::new()?, watching: false })
    }

    fn watch(&mut self, ops: &mut EventOps) {
        match ops.add(Events::with_data_raw(self.input, 0, EventSet::IN)) {
            Ok(()) => self.watching = true,
            // A regular file or /dev/null cannot be watched: the console has no input then.
            Err(e) => tracing::debug!("serial input: not watching fd {}: {e:?}", self.input),
        }
    }

    fn unwatch(&mut self, ops: &mut EventOps) {
        if self.watching {
            let _ = ops.remove(Events::with_data_raw(self.input, 0, EventSet::IN));
            self.watching = false;
        }
    }

    /// Moves what stdin has into the FIFO, as much as fits.
    fn pump(&mut self, ops: &mut EventOps) {
        let mut uart = self.uart.lock().unwrap_or_else(|e| e.into_inner());
        let room = uart.input_room();
        if room == 0 {
            drop(uart);
            self.unwatch(ops);
            if let Err(e) = self.retry.reset(RETRY, None) {
                tracing::warn!("serial input: arming the retry timer: {e}");
            }
            return;
        }
        let mut buf = [0u8; 64];
        let want = room.min(buf.len());
        // SAFETY: reading into a local buffer of at least `want` bytes.
        let n = unsafe { libc::read(self.input, buf.as_mut_ptr().cast(), want) };
        match n {
            n if n > 0 => {
                uart.enqueue_input(&buf[..n as usize]);
            }
            0 => {
                drop(uart);
                tracing::debug!("serial input: end of input");
                self.unwatch(ops);
            }
            _ => {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::WouldBlock
                    && e.kind() != std::io::ErrorKind::Interrupted
                {
                    drop(uart);
                    tracing::warn!("serial input: {e}");
                    self.unwatch(ops);
                }
            }
        }
    }
}

impl MutEventSubscriber for SerialInput {
    fn process(&mut self, events: Events, ops: &mut EventOps) {
        if events.fd() == self.retry.as_raw_fd() {
            let _ = self.retry.wait();
            self.watch(ops);
        } else if events.event_set().contains(EventSet::IN) {
            self.pump(ops);
        } else {
            // Hung up with nothing left to read.
            self.unwatch(ops);
        }
    }

    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::new(&self.retry, EventSet::IN)) {
            tracing::warn!("serial input: watching the retry timer: {e:?}");
        }
        self.watch(ops);
    }
}
