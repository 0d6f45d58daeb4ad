//! A process's file descriptor table (shared between threads, or with CLONE_FILES). The table
//! is also the owner of its process's POSIX record locks: closing any descriptor of a file
//! releases them on that file, as on Linux.

use crate::sync::{Mutex, MutexGuard};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::abi::Errno;
use crate::vfs::file::File;
use crate::vfs::lock::LockRegistry;

/// RLIMIT_NOFILE when the host's cannot be read: Linux's defaults (systemd's hard limit).
pub const DEFAULT_NOFILE: (u64, u64) = (1024, 524_288);
/// Hard ceiling on descriptors per table (Linux's default fs.nr_open): RLIMIT_NOFILE cannot be
/// raised past it.
pub const MAX_NOFILE: u64 = 1 << 20;

/// The calling process's RLIMIT_NOFILE, within what a descriptor table allows.
pub fn host_nofile() -> (u64, u64) {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit into a local.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return DEFAULT_NOFILE;
    }
    let hard = r.rlim_max.min(MAX_NOFILE);
    (r.rlim_cur.min(hard), hard)
}

#[derive(Clone)]
pub struct FdEntry {
    pub file: Arc<File>,
    pub cloexec: bool,
}

pub struct FdTable {
    fds: Mutex<Vec<Option<FdEntry>>>,
    /// Unique per table: the owner of POSIX locks taken through it.
    id: u64,
    locks: Arc<LockRegistry>,
}

static NEXT_TABLE_ID: AtomicU64 = AtomicU64::new(1);

impl Drop for FdTable {
    fn drop(&mut self) {
        let fds = std::mem::take(self.fds.get_mut().unwrap_or_else(|e| e.into_inner()));
        self.closed(fds.iter().flatten());
    }
}

impl FdTable {
    /// An empty table whose POSIX locks live in `locks`.
    pub fn new(locks: Arc<LockRegistry>) -> Arc<FdTable> {
        Arc::new(FdTable::with_fds(Vec::new(), locks))
    }

    fn with_fds(fds: Vec<Option<FdEntry>>, locks: Arc<LockRegistry>) -> FdTable {
        FdTable { fds: Mutex::new(fds), id: NEXT_TABLE_ID.fetch_add(1, Ordering::Relaxed), locks }
    }

    /// The owner id of the POSIX locks taken through this table.
    pub fn lock_owner(&self) -> u64 {
        self.id
    }

    /// Descriptors of `entries` were closed: this process's POSIX locks on their files go.
    fn closed<'a>(&self, entries: impl IntoIterator<Item = &'a FdEntry>) {
        if self.locks.is_empty() {
            return;
        }
        for e in entries {
            self.locks.release_posix(self.id, &e.file);
        }
    }

    #[track_caller]
    fn lock(&self) -> MutexGuard<'_, Vec<Option<FdEntry>>> {
        self.fds.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, fd: i32) -> Result<Arc<File>, Errno> {
        self.get_entry(fd).map(|e| e.file)
    }

    pub fn get_entry(&self, fd: i32) -> Result<FdEntry, Errno> {
        if fd < 0 {
            return Err(Errno::EBADF);
        }
        self.lock().get(fd as usize).cloned().flatten().ok_or(Errno::EBADF)
    }

    /// Installs `file` at the lowest free descriptor >= `min`, below `limit`.
    pub fn install(
        &self,
        file: Arc<File>,
        cloexec: bool,
        min: i32,
        limit: u64,
    ) -> Result<i32, Errno> {
        let mut fds = self.lock();
        let limit = limit.min(MAX_NOFILE) as usize;
        let start = min.max(0) as usize;
        let slot =
            (start..limit).find(|&i| i >= fds.len() || fds[i].is_none()).ok_or(Errno::EMFILE)?;
        if slot >= fds.len() {
            fds.resize(slot + 1, None);
        }
        fds[slot] = Some(FdEntry { file, cloexec });
        Ok(slot as i32)
    }

    /// Puts `file` at `fd`, returning what was there (dup2/dup3).
    pub fn install_at(
        &self,
        fd: i32,
        file: Arc<File>,
        cloexec: bool,
        limit: u64,
    ) -> Result<Option<FdEntry>, Errno> {
        if fd < 0 || fd as u64 >= limit.min(MAX_NOFILE) {
            return Err(Errno::EBADF);
        }
        let mut fds = self.lock();
        let i = fd as usize;
        if i >= fds.len() {
            fds.resize(i + 1, None);
        }
        let prev = fds[i].replace(FdEntry { file, cloexec });
        drop(fds);
        self.closed(prev.iter());
        Ok(prev)
    }

    pub fn remove(&self, fd: i32) -> Result<FdEntry, Errno> {
        if fd < 0 {
            return Err(Errno::EBADF);
        }
        let entry = self.lock().get_mut(fd as usize).and_then(|s| s.take()).ok_or(Errno::EBADF)?;
        self.closed([&entry]);
        Ok(entry)
    }

    pub fn set_cloexec(&self, fd: i32, on: bool) -> Result<(), Errno> {
        let mut fds = self.lock();
        match fds.get_mut(fd.max(0) as usize) {
            Some(Some(e)) if fd >= 0 => {
                e.cloexec = on;
                Ok(())
            }
            _ => Err(Errno::EBADF),
        }
    }

    /// An independent copy (fork without CLONE_FILES).
    pub fn fork(&self) -> Arc<FdTable> {
        Arc::new(FdTable::with_fds(self.lock().clone(), self.locks.clone()))
    }

    /// Drops close-on-exec descriptors (execve).
    pub fn close_on_exec(&self) -> Vec<FdEntry> {
        let mut fds = self.lock();
        let mut closed = Vec::new();
        for slot in fds.iter_mut() {
            if slot.as_ref().is_some_and(|e| e.cloexec) {
                closed.extend(slot.take());
            }
        }
        drop(fds);
        self.closed(&closed);
        closed
    }

    /// Closes descriptors in `[first, last]` (close_range).
    pub fn close_range(&self, first: u32, last: u32, cloexec_only: bool) -> Vec<FdEntry> {
        let mut fds = self.lock();
        let mut closed = Vec::new();
        let end = (last as usize).min(fds.len().saturating_sub(1));
        for i in first as usize..=end {
            if i >= fds.len() {
                break;
            }
            if cloexec_only {
                if let Some(e) = fds[i].as_mut() {
                    e.cloexec = true;
                }
            } else {
                closed.extend(fds[i].take());
            }
        }
        drop(fds);
        self.closed(&closed);
        closed
    }

    /// Open descriptors and their files (for /proc/self/fd).
    pub fn list(&self) -> Vec<(i32, Arc<File>)> {
        self.lock()
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().map(|e| (i as i32, e.file.clone())))
            .collect()
    }

    /// Drops every descriptor (process exit).
    pub fn clear(&self) -> Vec<FdEntry> {
        let closed: Vec<FdEntry> =
            std::mem::take(&mut *self.lock()).into_iter().flatten().collect();
        self.closed(&closed);
        closed
    }
}
