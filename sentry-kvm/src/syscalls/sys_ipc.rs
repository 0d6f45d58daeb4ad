//! System V IPC: shmget, shmat, shmdt, shmctl, semget, semop, semtimedop, semctl, msgget,
//! msgsnd, msgrcv, msgctl. Arguments are read and checked here, in Linux's order of errors;
//! the objects live in the sandbox's IPC namespace (kernel/ipc).

use super::Call;
use crate::abi::Errno;
use crate::abi::errno::SysResult;
use crate::kernel::ipc::msg::{self, MSG_COPY, MSG_EXCEPT, Select};
use crate::kernel::ipc::perm::{Caller, CtlOut, IPC_NOWAIT, IPC_SET};
use crate::kernel::ipc::sem::{self, MAX_SOPS, SemArg, SemBuf};
use crate::kernel::ipc::shm;
use crate::mm::PAGE_SIZE;
use crate::mm::address_space::MapRequest;
use crate::mm::vma::{Prot, VmaName};

/// Sizes of struct shmid64_ds, semid64_ds and msqid64_ds, which IPC_SET reads whole.
const SHMID_DS_SIZE: usize = 112;
const SEMID_DS_SIZE: usize = 104;
const MSQID_DS_SIZE: usize = 120;

/// Copies a ctl command's result to the caller's buffer; returns its value.
fn ctl_out(c: &Call, buf: u64, out: CtlOut) -> SysResult {
    if let Some(data) = out.data {
        c.write_bytes(buf, &data)?;
    }
    Ok(out.value as u32 as u64)
}

// ---- shared memory -------------------------------------------------------------------------

pub fn shmget(c: &mut Call) -> SysResult {
    let (key, size, flags) = (c.arg_i32(0), c.args[1], c.arg_i32(2));
    let ipc = &c.task.kernel.ipc;
    let limits = ipc.limits();
    let creds = c.task.creds();
    let caller = Caller { creds: &creds, pid: c.task.tgid() };
    let id = ipc.shm.get(&c.task.kernel.phys, &limits, caller, key, size, flags)?;
    Ok(id as u64)
}

pub fn shmat(c: &mut Call) -> SysResult {
    let (id, mut addr, flags) = (c.arg_i32(0), c.args[1], c.arg_i32(2));
    if id < 0 {
        return Err(Errno::EINVAL);
    }
    if addr != 0 {
        if !addr.is_multiple_of(PAGE_SIZE) {
            if flags & shm::SHM_RND == 0 {
                return Err(Errno::EINVAL);
            }
            addr &= !(PAGE_SIZE - 1);
            if addr == 0 && flags & shm::SHM_REMAP != 0 {
                return Err(Errno::EINVAL);
            }
        }
    } else if flags & shm::SHM_REMAP != 0 {
        return Err(Errno::EINVAL);
    }
    let ipc = c.task.kernel.ipc.clone();
    let att = ipc.shm.attach(&ipc, &c.task.creds(), id, flags, c.task.tgid())?;
    let rdonly = flags & shm::SHM_RDONLY != 0;
    let prot = Prot { read: true, write: !rdonly, exec: flags & shm::SHM_EXEC != 0 };
    let mut req = MapRequest::anon(att.len(), prot);
    req.addr = addr;
    req.shared = true;
    req.may_write = !rdonly;
    req.name = VmaName::File(att.map_name());
    if addr != 0 {
        if flags & shm::SHM_REMAP != 0 {
            req.fixed = true;
        } else {
            addr.checked_add(att.len()).ok_or(Errno::EINVAL)?;
            req.noreplace = true;
        }
    }
    req.backing = Some(att);
    match c.mm().mmap(req) {
        Err(Errno::EEXIST) => Err(Errno::EINVAL),
        r => r,
    }
}

pub fn shmdt(c: &mut Call) -> SysResult {
    let addr = c.args[0];
    if !addr.is_multiple_of(PAGE_SIZE) {
        return Err(Errno::EINVAL);
    }
    let mm = c.mm();
    // The attach at `addr`: the first segment area whose offset into the segment matches its
    // distance from `addr` (fragments left by munmap or mprotect count), then any further
    // fragments of that segment within its size.
    let mut found: Option<(i32, u64)> = None;
    let mut ranges = Vec::new();
    for v in mm.areas().iter().filter(|v| v.end > addr) {
        let Some((id, len)) = shm::attachment_of(v) else { continue };
        let matches = v.start >= addr && (v.start - addr) / PAGE_SIZE == v.pgoff;
        match found {
            None if matches => {
                found = Some((id, len));
                ranges.push((v.start, v.end));
            }
            Some((fid, flen)) if v.end - addr <= flen && matches && fid == id => {
                ranges.push((v.start, v.end));
            }
            Some((_, flen)) if v.end - addr <= flen => {}
            Some(_) => break,
            None => {}
        }
    }
    let (id, _) = found.ok_or(Errno::EINVAL)?;
    for (start, end) in ranges {
        mm.munmap(start, end - start)?;
    }
    c.task.kernel.ipc.shm.detached(id, c.task.tgid());
    Ok(0)
}

pub fn shmctl(c: &mut Call) -> SysResult {
    let (id, cmd, buf) = (c.arg_i32(0), c.arg_i32(1), c.args[2]);
    if cmd < 0 || id < 0 {
        return Err(Errno::EINVAL);
    }
    let arg = if cmd == IPC_SET { Some(c.read_bytes(buf, SHMID_DS_SIZE)?) } else { None };
    let ipc = &c.task.kernel.ipc;
    let out = ipc.shm.ctl(&ipc.limits(), &c.task.creds(), id, cmd, arg.as_deref())?;
    ctl_out(c, buf, out)
}

// ---- semaphores ----------------------------------------------------------------------------

pub fn semget(c: &mut Call) -> SysResult {
    let ipc = &c.task.kernel.ipc;
    let id =
        ipc.sem.get(&ipc.limits(), &c.task.creds(), c.arg_i32(0), c.arg_i32(1), c.arg_i32(2))?;
    Ok(id as u64)
}

pub fn semop(c: &mut Call) -> SysResult {
    semop_common(c, None)
}

pub fn semtimedop(c: &mut Call) -> SysResult {
    let t = c.args[3];
    semop_common(c, (t != 0).then_some(t))
}

fn semop_common(c: &mut Call, timeout: Option<u64>) -> SysResult {
    let (id, sops, nsops) = (c.arg_i32(0), c.args[1], c.args[2]);
    let ipc = c.task.kernel.ipc.clone();
    if nsops < 1 || id < 0 {
        return Err(Errno::EINVAL);
    }
    if nsops > ipc.limits().semopm.max(0) as u64 || nsops > MAX_SOPS as u64 {
        return Err(Errno::E2BIG);
    }
    let raw = c.read_bytes(sops, nsops as usize * 6)?;
    let ops: Vec<SemBuf> = raw.chunks_exact(6).map(SemBuf::parse).collect();
    let deadline = match timeout {
        Some(t) => Some(super::sys_time::deadline_after(super::sys_time::read_timespec(c, t)?)),
        None => None,
    };
    let creds = c.task.creds();
    let caller = Caller { creds: &creds, pid: c.task.tgid() };
    ipc.sem.op(&**c.task, caller, id, ops, deadline)?;
    Ok(0)
}

pub fn semctl(c: &mut Call) -> SysResult {
    let (id, num, cmd, arg) = (c.arg_i32(0), c.arg_i32(1), c.arg_i32(2), c.args[3]);
    if id < 0 {
        return Err(Errno::EINVAL);
    }
    let ipc = c.task.kernel.ipc.clone();
    let bytes;
    let arg = match cmd {
        sem::SETVAL => SemArg::Val(arg as i32),
        IPC_SET => {
            bytes = c.read_bytes(arg, SEMID_DS_SIZE)?;
            SemArg::Bytes(&bytes)
        }
        sem::SETALL => {
            let n = ipc.sem.nsems(id)?;
            bytes = c.read_bytes(arg, n * 2)?;
            SemArg::Bytes(&bytes)
        }
        _ => SemArg::None,
    };
    let creds = c.task.creds();
    let caller = Caller { creds: &creds, pid: c.task.tgid() };
    let out = ipc.sem.ctl(&ipc.limits(), caller, id, num, cmd, arg)?;
    ctl_out(c, c.args[3], out)
}

// ---- message queues ------------------------------------------------------------------------

pub fn msgget(c: &mut Call) -> SysResult {
    let ipc = &c.task.kernel.ipc;
    Ok(ipc.msg.get(&ipc.limits(), &c.task.creds(), c.arg_i32(0), c.arg_i32(1))? as u64)
}

pub fn msgsnd(c: &mut Call) -> SysResult {
    let (id, msgp, size, flags) = (c.arg_i32(0), c.args[1], c.args[2], c.arg_i32(3));
    let mtype = c.read_u64(msgp)? as i64;
    let ipc = c.task.kernel.ipc.clone();
    if size > ipc.limits().msgmax.max(0) as u64 || id < 0 {
        return Err(Errno::EINVAL);
    }
    if mtype < 1 {
        return Err(Errno::EINVAL);
    }
    if size > msg::MAX_QUEUED_BYTES as u64 {
        return Err(Errno::ENOMEM);
    }
    let text = c.read_bytes(msgp.checked_add(8).ok_or(Errno::EFAULT)?, size as usize)?;
    let creds = c.task.creds();
    let caller = Caller { creds: &creds, pid: c.task.tgid() };
    ipc.msg.send(&**c.task, caller, id, mtype, text, flags)?;
    Ok(0)
}

pub fn msgrcv(c: &mut Call) -> SysResult {
    let (id, msgp, size, msgtyp, flags) =
        (c.arg_i32(0), c.args[1], c.args[2], c.args[3] as i64, c.arg_i32(4));
    if id < 0 || (size as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    let ipc = c.task.kernel.ipc.clone();
    let mut max = size as usize;
    if flags & MSG_COPY != 0 {
        if flags & MSG_EXCEPT != 0 || flags & IPC_NOWAIT == 0 {
            return Err(Errno::EINVAL);
        }
        max = max.min(ipc.limits().msgmax.max(0) as usize);
    }
    let select = Select::of(msgtyp, flags);
    let creds = c.task.creds();
    let caller = Caller { creds: &creds, pid: c.task.tgid() };
    let (mtype, text) = ipc.msg.receive(&**c.task, caller, id, max, select, flags)?;
    c.write_bytes(msgp, &mtype.to_le_bytes())?;
    c.write_bytes(msgp.checked_add(8).ok_or(Errno::EFAULT)?, &text)?;
    Ok(text.len() as u64)
}

pub fn msgctl(c: &mut Call) -> SysResult {
    let (id, cmd, buf) = (c.arg_i32(0), c.arg_i32(1), c.args[2]);
    if id < 0 || cmd < 0 {
        return Err(Errno::EINVAL);
    }
    let arg = if cmd == IPC_SET { Some(c.read_bytes(buf, MSQID_DS_SIZE)?) } else { None };
    let ipc = &c.task.kernel.ipc;
    let out = ipc.msg.ctl(&ipc.limits(), &c.task.creds(), id, cmd, arg.as_deref())?;
    ctl_out(c, buf, out)
}
