//! Waiting for readiness: poll, ppoll, select, pselect6, epoll, eventfd.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Call;
use crate::abi::Errno;
use crate::abi::errno::SysResult;
use crate::abi::signal::SigSet;
use crate::abi::stat::{O_CLOEXEC, O_NONBLOCK, O_RDWR};
use crate::kernel::epoll::{Epoll, wait_ready};
use crate::kernel::eventfd::EventFd;
use crate::vfs::file::File;
use crate::waiter::Events;

fn deadline_ms(ms: i64) -> Option<Instant> {
    (ms >= 0).then(|| super::sys_time::deadline_after(Duration::from_millis(ms as u64)))
}

/// Applies a temporary signal mask for the duration of a wait (ppoll, pselect, epoll_pwait);
/// it stays in place until signal delivery if the wait is interrupted.
fn with_mask(c: &mut Call, mask_addr: u64, f: impl FnOnce(&mut Call) -> SysResult) -> SysResult {
    if mask_addr == 0 {
        return f(c);
    }
    let m = SigSet(c.read_u64(mask_addr)?).blockable();
    let old = {
        let mut s = c.task.sig();
        let old = s.mask;
        s.saved_mask = Some(old);
        s.mask = m;
        old
    };
    c.task.mask_changed(old);
    let r = f(c);
    if !matches!(r, Err(e) if e.is_restart() || e == Errno::EINTR) {
        let mut s = c.task.sig();
        if let Some(old) = s.saved_mask.take() {
            s.mask = old;
        }
        drop(s);
        c.task.recalc_interrupt();
    }
    r
}

fn do_poll(c: &mut Call, addr: u64, nfds: u64, deadline: Option<Instant>) -> SysResult {
    if nfds > c.nofile_limit().max(1024) {
        return Err(Errno::EINVAL);
    }
    let raw = c.read_bytes(addr, nfds as usize * 8)?;
    let mut entries = Vec::new();
    let mut slots = Vec::new();
    let files = c.task.files();
    for (i, ch) in raw.chunks_exact(8).enumerate() {
        let fd = i32::from_le_bytes([ch[0], ch[1], ch[2], ch[3]]);
        let events = u16::from_le_bytes([ch[4], ch[5]]);
        if fd < 0 {
            continue;
        }
        match files.get(fd) {
            Ok(f) => {
                slots.push((i, Some(entries.len())));
                entries.push((f, Events(u32::from(events))));
            }
            Err(_) => slots.push((i, None)),
        }
    }
    let ready = if slots.iter().any(|(_, e)| e.is_none()) {
        // Invalid descriptors are ready at once with POLLNVAL.
        entries.iter().map(|(f, w)| f.ops.readiness().intersect(w.union(Events(0x18)))).collect()
    } else {
        wait_ready(c.task, &entries, deadline)?
    };
    let mut out = raw.clone();
    let mut count = 0;
    for ch in out.chunks_exact_mut(8) {
        ch[6] = 0;
        ch[7] = 0;
    }
    for (i, e) in slots {
        let rev: u16 = match e {
            None => Events::NVAL.0 as u16,
            Some(j) => ready[j].0 as u16,
        };
        if rev != 0 {
            count += 1;
        }
        out[i * 8 + 6..i * 8 + 8].copy_from_slice(&rev.to_le_bytes());
    }
    c.write_bytes(addr, &out)?;
    Ok(count)
}

pub fn poll(c: &mut Call) -> SysResult {
    let d = deadline_ms(c.arg_i32(2) as i64);
    do_poll(c, c.args[0], c.args[1], d)
}

pub fn ppoll(c: &mut Call) -> SysResult {
    let d = if c.args[2] != 0 {
        Some(super::sys_time::deadline_after(super::sys_time::read_timespec(c, c.args[2])?))
    } else {
        None
    };
    if c.args[3] != 0 && c.args[4] != 8 {
        return Err(Errno::EINVAL);
    }
    let (addr, n, mask) = (c.args[0], c.args[1], c.args[3]);
    with_mask(c, mask, |c| do_poll(c, addr, n, d))
}

fn do_select(c: &mut Call, nfds: i32, sets: [u64; 3], deadline: Option<Instant>) -> SysResult {
    if !(0..=1024 * 64).contains(&nfds) {
        return Err(Errno::EINVAL);
    }
    let bytes = (nfds as usize).div_ceil(64) * 8;
    let read_set = |c: &Call, a: u64| -> Result<Vec<u8>, Errno> {
        if a == 0 { Ok(vec![0; bytes]) } else { c.read_bytes(a, bytes) }
    };
    let ins = [read_set(c, sets[0])?, read_set(c, sets[1])?, read_set(c, sets[2])?];
    let mut entries = Vec::new();
    let mut fds = Vec::new();
    let files = c.task.files();
    for fd in 0..nfds as usize {
        let bit = |s: &Vec<u8>| s[fd / 8] & (1 << (fd % 8)) != 0;
        let (r, w, x) = (bit(&ins[0]), bit(&ins[1]), bit(&ins[2]));
        if !(r || w || x) {
            continue;
        }
        let f = files.get(fd as i32)?;
        let mut want = Events::default();
        if r {
            want = want | Events::IN | Events::HUP;
        }
        if w {
            want = want | Events::OUT;
        }
        if x {
            want = want | Events::PRI;
        }
        entries.push((f, want));
        fds.push((fd, r, w, x));
    }
    let ready = wait_ready(c.task, &entries, deadline)?;
    let mut outs = [vec![0u8; bytes], vec![0u8; bytes], vec![0u8; bytes]];
    let mut count = 0;
    for ((fd, r, w, x), ev) in fds.iter().zip(ready) {
        let set = |o: &mut Vec<u8>| o[fd / 8] |= 1 << (fd % 8);
        if *r && ev.contains(Events::IN | Events::HUP | Events::ERR) {
            set(&mut outs[0]);
            count += 1;
        }
        if *w && ev.contains(Events::OUT | Events::ERR) {
            set(&mut outs[1]);
            count += 1;
        }
        if *x && ev.contains(Events::PRI) {
            set(&mut outs[2]);
            count += 1;
        }
    }
    for (i, a) in sets.iter().enumerate() {
        if *a != 0 {
            c.write_bytes(*a, &outs[i])?;
        }
    }
    Ok(count)
}

pub fn select(c: &mut Call) -> SysResult {
    let deadline = if c.args[4] != 0 {
        let b = c.read_bytes(c.args[4], 16)?;
        let s = i64::from_le_bytes(b[0..8].try_into().map_err(|_| Errno::EFAULT)?);
        let us = i64::from_le_bytes(b[8..16].try_into().map_err(|_| Errno::EFAULT)?);
        if s < 0 || us < 0 {
            return Err(Errno::EINVAL);
        }
        Some(super::sys_time::deadline_after(
            Duration::from_secs(s as u64) + Duration::from_micros(us as u64),
        ))
    } else {
        None
    };
    let sets = [c.args[1], c.args[2], c.args[3]];
    let r = do_select(c, c.arg_i32(0), sets, deadline);
    if c.args[4] != 0 && r.is_ok() {
        let left =
            deadline.map(|d| d.saturating_duration_since(Instant::now())).unwrap_or_default();
        let mut b = [0u8; 16];
        b[0..8].copy_from_slice(&(left.as_secs() as i64).to_le_bytes());
        b[8..16].copy_from_slice(&i64::from(left.subsec_micros()).to_le_bytes());
        c.write_bytes(c.args[4], &b)?;
    }
    r
}

pub fn pselect6(c: &mut Call) -> SysResult {
    let deadline = if c.args[4] != 0 {
        Some(super::sys_time::deadline_after(super::sys_time::read_timespec(c, c.args[4])?))
    } else {
        None
    };
    let mask = if c.args[5] != 0 {
        let b = c.read_bytes(c.args[5], 16)?;
        let addr = u64::from_le_bytes(b[0..8].try_into().map_err(|_| Errno::EFAULT)?);
        let size = u64::from_le_bytes(b[8..16].try_into().map_err(|_| Errno::EFAULT)?);
        if addr != 0 && size != 8 {
            return Err(Errno::EINVAL);
        }
        addr
    } else {
        0
    };
    let (nfds, sets) = (c.arg_i32(0), [c.args[1], c.args[2], c.args[3]]);
    with_mask(c, mask, |c| do_select(c, nfds, sets, deadline))
}

pub fn epoll_create1(c: &mut Call) -> SysResult {
    let flags = c.arg_u32(0);
    if flags & !O_CLOEXEC != 0 {
        return Err(Errno::EINVAL);
    }
    let file = File::new(Epoll::new(), O_RDWR, None, b"anon_inode:[eventpoll]".to_vec());
    c.install(file, flags & O_CLOEXEC != 0)
}

pub fn epoll_create(c: &mut Call) -> SysResult {
    if c.arg_i32(0) <= 0 {
        return Err(Errno::EINVAL);
    }
    c.args[0] = 0;
    epoll_create1(c)
}

fn epoll_of(c: &Call, fd: i32) -> Result<Arc<File>, Errno> {
    let f = c.file(fd)?;
    if !f.ops.as_any().is::<Epoll>() {
        return Err(Errno::EINVAL);
    }
    Ok(f)
}

pub fn epoll_ctl(c: &mut Call) -> SysResult {
    const ADD: i32 = 1;
    const DEL: i32 = 2;
    const MOD: i32 = 3;
    let ep = epoll_of(c, c.arg_i32(0))?;
    let epoll = ep.ops.as_any().downcast_ref::<Epoll>().ok_or(Errno::EINVAL)?;
    let fd = c.arg_i32(2);
    let target = c.file(fd)?;
    if Arc::ptr_eq(&target, &ep) {
        return Err(Errno::EINVAL);
    }
    if target.ops.as_any().is::<crate::vfs::fs::overlay::RegularFile>() {
        return Err(Errno::EPERM);
    }
    let op = c.arg_i32(1);
    let (events, data) = if op != DEL {
        let b = c.read_bytes(c.args[3], 12)?;
        (
            u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            u64::from_le_bytes(b[4..12].try_into().map_err(|_| Errno::EFAULT)?),
        )
    } else {
        (0, 0)
    };
    match op {
        ADD => epoll.ctl_add(fd, &target, events, data)?,
        MOD => epoll.ctl_mod(fd, events, data)?,
        DEL => epoll.ctl_del(fd)?,
        _ => return Err(Errno::EINVAL),
    }
    Ok(0)
}

fn do_epoll_wait(c: &mut Call, deadline: Option<Instant>) -> SysResult {
    let ep = epoll_of(c, c.arg_i32(0))?;
    let epoll = ep.ops.as_any().downcast_ref::<Epoll>().ok_or(Errno::EINVAL)?;
    let max = c.arg_i32(2);
    if max <= 0 || max > 1 << 20 {
        return Err(Errno::EINVAL);
    }
    let ready = epoll.wait(c.task, max as usize, deadline)?;
    let mut b = Vec::with_capacity(ready.len() * 12);
    for (ev, data) in &ready {
        b.extend_from_slice(&ev.to_le_bytes());
        b.extend_from_slice(&data.to_le_bytes());
    }
    c.write_bytes(c.args[1], &b)?;
    Ok(ready.len() as u64)
}

pub fn epoll_wait(c: &mut Call) -> SysResult {
    let d = deadline_ms(c.arg_i32(3) as i64);
    do_epoll_wait(c, d)
}

pub fn epoll_pwait(c: &mut Call) -> SysResult {
    let d = deadline_ms(c.arg_i32(3) as i64);
    if c.args[4] != 0 && c.args[5] != 8 {
        return Err(Errno::EINVAL);
    }
    let mask = c.args[4];
    with_mask(c, mask, |c| do_epoll_wait(c, d))
}

pub fn epoll_pwait2(c: &mut Call) -> SysResult {
    let d = if c.args[3] != 0 {
        Some(super::sys_time::deadline_after(super::sys_time::read_timespec(c, c.args[3])?))
    } else {
        None
    };
    if c.args[4] != 0 && c.args[5] != 8 {
        return Err(Errno::EINVAL);
    }
    let mask = c.args[4];
    with_mask(c, mask, |c| do_epoll_wait(c, d))
}

pub fn eventfd2(c: &mut Call) -> SysResult {
    const EFD_SEMAPHORE: u32 = 1;
    let flags = c.arg_u32(1);
    if flags & !(O_CLOEXEC | O_NONBLOCK | EFD_SEMAPHORE) != 0 {
        return Err(Errno::EINVAL);
    }
    let ops = EventFd::new(u64::from(c.arg_u32(0)), flags & EFD_SEMAPHORE != 0);
    let file =
        File::new(ops, O_RDWR | (flags & O_NONBLOCK), None, b"anon_inode:[eventfd]".to_vec());
    c.install(file, flags & O_CLOEXEC != 0)
}

pub fn eventfd(c: &mut Call) -> SysResult {
    c.args[1] = 0;
    eventfd2(c)
}
