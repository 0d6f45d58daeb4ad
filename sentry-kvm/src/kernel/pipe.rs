//! Pipes and FIFOs.

use crate::sync::{Mutex, MutexGuard};
use std::any::Any;
use std::collections::VecDeque;
use std::sync::Arc;

use crate::abi::Errno;
use crate::abi::stat::{
    O_ACCMODE, O_NONBLOCK, O_RDONLY, O_RDWR, O_WRONLY, S_IFIFO, Stat, Timespec,
};
use crate::kernel::task::current;
use crate::vfs::context::Context;
use crate::vfs::file::FileOps;
use crate::vfs::inode::Inode;
use crate::waiter::{Events, WaitQueue};

pub const PIPE_BUF: usize = 4096;
pub const DEFAULT_CAPACITY: usize = 65536;

pub struct PipeState {
    buf: VecDeque<u8>,
    readers: usize,
    writers: usize,
    /// Whether a writer ever opened (FIFO readers see EOF only after one has come and gone).
    had_writer: bool,
    capacity: usize,
}

pub struct Pipe {
    state: Mutex<PipeState>,
    queue: Arc<WaitQueue>,
    ino: u64,
}

static NEXT_PIPE_INO: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Pipe {
    pub fn new() -> Arc<Pipe> {
        Arc::new(Pipe {
            state: Mutex::new(PipeState {
                buf: VecDeque::new(),
                readers: 0,
                writers: 0,
                had_writer: false,
                capacity: DEFAULT_CAPACITY,
            }),
            queue: Arc::new(WaitQueue::new()),
            ino: NEXT_PIPE_INO.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })
    }

    #[track_caller]
    fn lock(&self) -> MutexGuard<'_, PipeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn ino(&self) -> u64 {
        self.ino
    }

    /// A new reading end.
    pub fn reader(self: &Arc<Self>) -> Arc<PipeEnd> {
        self.lock().readers += 1;
        self.queue.notify_all();
        Arc::new(PipeEnd { pipe: self.clone(), read: true, write: false })
    }

    pub fn writer(self: &Arc<Self>) -> Arc<PipeEnd> {
        {
            let mut s = self.lock();
            s.writers += 1;
            s.had_writer = true;
        }
        self.queue.notify_all();
        Arc::new(PipeEnd { pipe: self.clone(), read: false, write: true })
    }

    fn both(self: &Arc<Self>) -> Arc<PipeEnd> {
        {
            let mut s = self.lock();
            s.readers += 1;
            s.writers += 1;
            s.had_writer = true;
        }
        Arc::new(PipeEnd { pipe: self.clone(), read: true, write: true })
    }

    fn stat(&self) -> Stat {
        let now = Timespec::now();
        Stat {
            dev: crate::abi::stat::makedev(0, 12),
            ino: self.ino,
            nlink: 1,
            mode: S_IFIFO | 0o600,
            blksize: 4096,
            atime: now,
            mtime: now,
            ctime: now,
            ..Default::default()
        }
    }
}

/// One open end of a pipe.
pub struct PipeEnd {
    pipe: Arc<Pipe>,
    read: bool,
    write: bool,
}

impl Drop for PipeEnd {
    fn drop(&mut self) {
        let mut s = self.pipe.lock();
        if self.read {
            s.readers -= 1;
        }
        if self.write {
            s.writers -= 1;
        }
        drop(s);
        self.pipe.queue.notify_all();
    }
}

impl PipeEnd {
    pub fn pipe(&self) -> &Arc<Pipe> {
        &self.pipe
    }
}

impl FileOps for PipeEnd {
    fn read(&self, ctx: &dyn Context, buf: &mut [u8], nonblock: bool) -> Result<usize, Errno> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let _reg = self.pipe.queue.register(ctx.waker(), Events::IN | Events::HUP);
            {
                let mut s = self.pipe.lock();
                if !s.buf.is_empty() {
                    let n = buf.len().min(s.buf.len());
                    for (i, b) in s.buf.drain(..n).enumerate() {
                        buf[i] = b;
                    }
                    drop(s);
                    self.pipe.queue.notify(Events::OUT);
                    return Ok(n);
                }
                if s.writers == 0 && (s.had_writer || !nonblock) {
                    return Ok(0);
                }
                if nonblock {
                    return Err(Errno::EAGAIN);
                }
            }
            ctx.block(None)?;
        }
    }

    fn write(&self, ctx: &dyn Context, data: &[u8], nonblock: bool) -> Result<usize, Errno> {
        let mut written = 0;
        loop {
            let _reg = self.pipe.queue.register(ctx.waker(), Events::OUT | Events::ERR);
            {
                let mut s = self.pipe.lock();
                if s.readers == 0 {
                    drop(s);
                    ctx.sigpipe();
                    return if written > 0 { Ok(written) } else { Err(Errno::EPIPE) };
                }
                let free = s.capacity - s.buf.len();
                let remaining = data.len() - written;
                // Writes of at most PIPE_BUF bytes are atomic.
                let can = if remaining <= PIPE_BUF {
                    if free >= remaining { remaining } else { 0 }
                } else {
                    free.min(remaining)
                };
                if can > 0 {
                    s.buf.extend(&data[written..written + can]);
                    written += can;
                    drop(s);
                    self.pipe.queue.notify(Events::IN);
                    if written == data.len() {
                        return Ok(written);
                    }
                    continue;
                }
                if nonblock {
                    return if written > 0 { Ok(written) } else { Err(Errno::EAGAIN) };
                }
            }
            if let Err(e) = ctx.block(None) {
                return if written > 0 { Ok(written) } else { Err(e) };
            }
        }
    }

    fn readiness(&self) -> Events {
        let s = self.pipe.lock();
        let mut ev = Events::default();
        if self.read {
            if !s.buf.is_empty() {
                ev = ev | Events::IN | Events::RDNORM;
            }
            if s.writers == 0 && s.had_writer {
                ev = ev | Events::HUP;
            }
        }
        if self.write {
            if s.readers == 0 {
                ev = ev | Events::ERR;
            } else if s.capacity - s.buf.len() >= PIPE_BUF {
                ev = ev | Events::OUT | Events::WRNORM;
            }
        }
        ev
    }

    fn wait_queue(&self) -> Option<Arc<WaitQueue>> {
        Some(self.pipe.queue.clone())
    }

    fn stat(&self) -> Result<Stat, Errno> {
        Ok(self.pipe.stat())
    }

    fn ioctl(&self, ctx: &dyn Context, cmd: u32, arg: u64) -> crate::abi::errno::SysResult {
        const FIONREAD: u32 = 0x541b;
        if cmd == FIONREAD {
            let n = self.pipe.lock().buf.len() as u32;
            ctx.copy_out(arg, &n.to_le_bytes())?;
            return Ok(0);
        }
        Err(Errno::ENOTTY)
    }

    // An anonymous pipe reopened never waits for a partner (Linux waits only on named FIFOs).
    fn reopen(self: Arc<Self>, flags: u32) -> Result<Arc<dyn FileOps>, Errno> {
        Ok(match flags & O_ACCMODE {
            O_RDONLY => self.pipe.reader(),
            O_WRONLY => self.pipe.writer(),
            O_RDWR => self.pipe.both(),
            _ => return Err(Errno::EINVAL),
        })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Opens a FIFO: the inode's attached pipe, created on first open.
pub fn open_fifo(inode: &dyn Inode, flags: u32) -> Result<Arc<dyn FileOps>, Errno> {
    let slot = inode.attachment().ok_or(Errno::ENXIO)?;
    let pipe = {
        let mut s = slot.lock().unwrap_or_else(|e| e.into_inner());
        match s.as_ref().and_then(|a| a.clone().downcast::<Pipe>().ok()) {
            Some(p) => p,
            None => {
                let p = Pipe::new();
                *s = Some(p.clone());
                p
            }
        }
    };
    let nonblock = flags & O_NONBLOCK != 0;
    match flags & O_ACCMODE {
        O_RDONLY => {
            let end = pipe.reader();
            if !nonblock {
                wait_for(&pipe, |s| s.writers > 0 || s.had_writer)?;
            }
            Ok(end)
        }
        O_WRONLY => {
            if nonblock && pipe.lock().readers == 0 {
                return Err(Errno::ENXIO);
            }
            let end = pipe.writer();
            if !nonblock {
                wait_for(&pipe, |s| s.readers > 0)?;
            }
            Ok(end)
        }
        O_RDWR => Ok(pipe.both()),
        _ => Err(Errno::EINVAL),
    }
}

fn wait_for(pipe: &Arc<Pipe>, cond: impl Fn(&PipeState) -> bool) -> Result<(), Errno> {
    let Some(task) = current() else { return Ok(()) };
    loop {
        let _reg = pipe.queue.register(&task.waker, Events::ALL);
        if cond(&pipe.lock()) {
            return Ok(());
        }
        task.block(None)?;
    }
}
