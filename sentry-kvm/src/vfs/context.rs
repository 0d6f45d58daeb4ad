//! What file operations and path resolution need from the task they run for, and nothing more:
//! its credentials, blocking and interruption, its memory (for ioctl arguments), SIGPIPE and
//! its process group. The kernel's `Task` implements [`Context`]; the vfs never sees the task
//! itself, so it does not depend on the kernel (the way gVisor's vfs takes a
//! `context.Context` rather than a `*kernel.Task`).

use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

use crate::abi::Errno;
use crate::creds::Credentials;
use crate::waiter::Waker;

pub trait Context {
    /// The credentials permission checks use.
    fn creds(&self) -> Arc<Credentials>;

    /// The task's wake-up channel, to register with the wait queues of what it waits for.
    fn waker(&self) -> &Arc<Waker>;

    /// Blocks until woken; ERESTARTSYS when a signal (or exit) interrupts, ETIMEDOUT past
    /// `deadline`. Callers register, re-check their condition, then block.
    fn block(&self, deadline: Option<Instant>) -> Result<(), Errno>;

    /// Whether a signal (or exit) wants the task back: a wait that polls gives up then.
    fn interrupted(&self) -> bool {
        self.waker().interrupted()
    }

    /// Reads the task's memory at `addr` (an ioctl argument).
    fn copy_in(&self, addr: u64, buf: &mut [u8]) -> Result<(), Errno>;

    /// Writes the task's memory at `addr` (an ioctl result).
    fn copy_out(&self, addr: u64, data: &[u8]) -> Result<(), Errno>;

    /// Sends the task SIGPIPE: it wrote to a pipe or socket that no one reads any more.
    fn sigpipe(&self);

    /// The id of the task's process group (what a terminal's TIOCGPGRP reports).
    fn process_group(&self) -> i32;

    /// The context itself, for the kernel to find its task again (kernel-side file objects
    /// such as sockets need more of the task than this trait offers).
    fn as_any(&self) -> &dyn Any;
}

/// For unit tests: a root context with a waker and no task behind it (blocking only waits and
/// checks for a wake-up; it has no memory to copy from or to).
#[cfg(test)]
pub struct TestContext(pub Arc<Waker>);

#[cfg(test)]
impl Default for TestContext {
    fn default() -> Self {
        TestContext(Waker::new())
    }
}

#[cfg(test)]
impl Context for TestContext {
    fn creds(&self) -> Arc<Credentials> {
        Arc::new(Credentials::root())
    }
    fn waker(&self) -> &Arc<Waker> {
        &self.0
    }
    fn block(&self, deadline: Option<Instant>) -> Result<(), Errno> {
        self.0.block_interruptible(deadline)
    }
    fn copy_in(&self, _addr: u64, _buf: &mut [u8]) -> Result<(), Errno> {
        Err(Errno::EFAULT)
    }
    fn copy_out(&self, _addr: u64, _data: &[u8]) -> Result<(), Errno> {
        Err(Errno::EFAULT)
    }
    fn sigpipe(&self) {}
    fn process_group(&self) -> i32 {
        1
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
