//! eventfd: a counter that can be waited on.

use crate::sync::Mutex;
use std::any::Any;
use std::sync::Arc;

use crate::abi::Errno;
use crate::abi::stat::Stat;
use crate::vfs::context::Context;
use crate::vfs::file::FileOps;
use crate::waiter::{Events, WaitQueue};

pub struct EventFd {
    count: Mutex<u64>,
    semaphore: bool,
    queue: Arc<WaitQueue>,
}

impl EventFd {
    pub fn new(initial: u64, semaphore: bool) -> Arc<EventFd> {
        Arc::new(EventFd {
            count: Mutex::new(initial),
            semaphore,
            queue: Arc::new(WaitQueue::new()),
        })
    }

    #[track_caller]
    fn lock(&self) -> crate::sync::MutexGuard<'_, u64> {
        self.count.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl FileOps for EventFd {
    fn read(&self, ctx: &dyn Context, buf: &mut [u8], nonblock: bool) -> Result<usize, Errno> {
        if buf.len() < 8 {
            return Err(Errno::EINVAL);
        }
        loop {
            let _r = self.queue.register(ctx.waker(), Events::IN);
            {
                let mut c = self.lock();
                if *c > 0 {
                    let v = if self.semaphore { 1 } else { *c };
                    *c -= v;
                    buf[..8].copy_from_slice(&v.to_le_bytes());
                    drop(c);
                    self.queue.notify(Events::OUT);
                    return Ok(8);
                }
            }
            if nonblock {
                return Err(Errno::EAGAIN);
            }
            ctx.block(None)?;
        }
    }

    fn write(&self, ctx: &dyn Context, data: &[u8], nonblock: bool) -> Result<usize, Errno> {
        let v = u64::from_le_bytes(
            data.get(..8).ok_or(Errno::EINVAL)?.try_into().map_err(|_| Errno::EINVAL)?,
        );
        if v == u64::MAX {
            return Err(Errno::EINVAL);
        }
        loop {
            let _r = self.queue.register(ctx.waker(), Events::OUT);
            {
                let mut c = self.lock();
                if u64::MAX - 1 - *c >= v {
                    *c += v;
                    drop(c);
                    self.queue.notify(Events::IN);
                    return Ok(8);
                }
            }
            if nonblock {
                return Err(Errno::EAGAIN);
            }
            ctx.block(None)?;
        }
    }

    fn readiness(&self) -> Events {
        let c = *self.lock();
        let mut e = Events::default();
        if c > 0 {
            e = e | Events::IN;
        }
        if c < u64::MAX - 1 {
            e = e | Events::OUT;
        }
        e
    }

    fn wait_queue(&self) -> Option<Arc<WaitQueue>> {
        Some(self.queue.clone())
    }

    fn stat(&self) -> Result<Stat, Errno> {
        Ok(crate::vfs::fs::anon::anon_inode_stat())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
