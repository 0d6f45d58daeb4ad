//! Advisory locks: flock(2), and fcntl(2)'s record lock commands (F_GETLK, F_SETLK, F_SETLKW
//! and their open-file-description forms F_OFD_*). The semantics live in [`crate::vfs::lock`];
//! here guest arguments are checked and `struct flock` is read and written.

use std::sync::Arc;

use super::Call;
use crate::abi::Errno;
use crate::abi::errno::SysResult;
use crate::vfs::file::{File, SEEK_CUR, SEEK_END, SEEK_SET};
use crate::vfs::lock::record::{Kind, Owner, Range};
use crate::vfs::lock::{RecordRequest, key_of};

pub const F_GETLK: u32 = 5;
pub const F_SETLK: u32 = 6;
pub const F_SETLKW: u32 = 7;
pub const F_OFD_GETLK: u32 = 36;
pub const F_OFD_SETLK: u32 = 37;
pub const F_OFD_SETLKW: u32 = 38;

const F_RDLCK: i16 = 0;
const F_WRLCK: i16 = 1;
const F_UNLCK: i16 = 2;

const LOCK_SH: u32 = 1;
const LOCK_EX: u32 = 2;
const LOCK_NB: u32 = 4;
const LOCK_UN: u32 = 8;
/// Removed from Linux (5.19): such requests succeed without doing anything.
const LOCK_MAND: u32 = 32;

/// `struct flock` on x86-64: l_type, l_whence (shorts), l_start, l_len (off_t), l_pid.
const FLOCK_SIZE: usize = 32;

struct FlockArg {
    l_type: i16,
    l_whence: i16,
    l_start: i64,
    l_len: i64,
    l_pid: i32,
}

impl FlockArg {
    fn parse(b: &[u8; FLOCK_SIZE]) -> FlockArg {
        let i16_at = |o: usize| i16::from_le_bytes([b[o], b[o + 1]]);
        let i64_at = |o: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[o..o + 8]);
            i64::from_le_bytes(x)
        };
        FlockArg {
            l_type: i16_at(0),
            l_whence: i16_at(2),
            l_start: i64_at(8),
            l_len: i64_at(16),
            l_pid: i32::from_le_bytes([b[24], b[25], b[26], b[27]]),
        }
    }

    fn encode(&self) -> [u8; FLOCK_SIZE] {
        let mut b = [0u8; FLOCK_SIZE];
        b[0..2].copy_from_slice(&self.l_type.to_le_bytes());
        b[2..4].copy_from_slice(&self.l_whence.to_le_bytes());
        b[8..16].copy_from_slice(&self.l_start.to_le_bytes());
        b[16..24].copy_from_slice(&self.l_len.to_le_bytes());
        b[24..28].copy_from_slice(&self.l_pid.to_le_bytes());
        b
    }
}

/// The byte range a `struct flock` names, its `l_whence` resolved against `file`.
fn range_of(file: &File, a: &FlockArg) -> Result<Range, Errno> {
    let base = match u32::try_from(a.l_whence).map_err(|_| Errno::EINVAL)? {
        SEEK_SET => 0,
        SEEK_CUR => {
            let off = *file.offset.lock().unwrap_or_else(|e| e.into_inner());
            i64::try_from(off).map_err(|_| Errno::EOVERFLOW)?
        }
        SEEK_END => match &file.location {
            Some(l) => l.inode.stat()?.size,
            None => file.ops.stat()?.size,
        },
        _ => return Err(Errno::EINVAL),
    };
    Range::from_flock(base, a.l_start, a.l_len)
}

/// fcntl's lock commands on `file`.
pub fn fcntl_lock(c: &mut Call, file: Arc<File>, cmd: u32) -> SysResult {
    if file.is_path_only() {
        return Err(Errno::EBADF);
    }
    let ofd = matches!(cmd, F_OFD_GETLK | F_OFD_SETLK | F_OFD_SETLKW);
    let mut raw = [0u8; FLOCK_SIZE];
    c.mm().copy_in(c.args[2], &mut raw)?;
    let mut arg = FlockArg::parse(&raw);
    let get = matches!(cmd, F_GETLK | F_OFD_GETLK);
    let kind = match arg.l_type {
        F_RDLCK => Some(Kind::Read),
        F_WRLCK => Some(Kind::Write),
        // F_GETLK asks about a lock to take, never an unlock.
        F_UNLCK if !get => None,
        _ => return Err(Errno::EINVAL),
    };
    if ofd && arg.l_pid != 0 {
        return Err(Errno::EINVAL);
    }
    let range = range_of(&file, &arg)?;
    let (owner, pid) = if ofd {
        (Owner::Ofd(file.id()), -1)
    } else {
        (Owner::Posix(c.task.files().lock_owner()), c.task.tgid())
    };
    let req = RecordRequest { owner, pid, kind, range };
    let registry = c.task.kernel.locks.clone();
    let key = key_of(&file)?;
    if get {
        match registry.test_record(key, req) {
            Some(holder) => {
                let (l_start, l_len) = holder.range.to_flock();
                arg.l_type = if holder.kind == Kind::Write { F_WRLCK } else { F_RDLCK };
                arg.l_whence = SEEK_SET as i16;
                arg.l_start = l_start;
                arg.l_len = l_len;
                // The holder as the caller's PID namespace names it (-1: an OFD lock).
                arg.l_pid = if holder.pid > 0 { c.task.pid_seen(holder.pid) } else { holder.pid };
            }
            None => arg.l_type = F_UNLCK,
        }
        c.write_bytes(c.args[2], &arg.encode())?;
        return Ok(0);
    }
    match kind {
        Some(Kind::Read) if !file.readable() => return Err(Errno::EBADF),
        Some(Kind::Write) if !file.writable() => return Err(Errno::EBADF),
        _ => {}
    }
    let locks = registry.get(key);
    // An OFD lock goes with its description: remember where, to release it when it closes.
    let locks = if ofd { file.attach_locks(locks) } else { locks };
    let wait = matches!(cmd, F_SETLKW | F_OFD_SETLKW);
    registry.set_record(&**c.task, &locks, req, wait)?;
    Ok(0)
}

pub fn flock(c: &mut Call) -> SysResult {
    // Checked in Linux's order: LOCK_MAND requests are ignored outright, then the operation,
    // then the descriptor.
    let op = c.arg_u32(1);
    if op & LOCK_MAND != 0 {
        return Ok(0);
    }
    let kind = match op & !LOCK_NB {
        LOCK_SH => Some(Kind::Read),
        LOCK_EX => Some(Kind::Write),
        LOCK_UN => None,
        _ => return Err(Errno::EINVAL),
    };
    let file = c.file(c.arg_i32(0))?;
    if file.is_path_only() {
        return Err(Errno::EBADF);
    }
    let registry = c.task.kernel.locks.clone();
    let locks = file.attach_locks(registry.get(key_of(&file)?));
    registry.flock(&**c.task, &locks, file.id(), kind, op & LOCK_NB == 0)?;
    Ok(0)
}
