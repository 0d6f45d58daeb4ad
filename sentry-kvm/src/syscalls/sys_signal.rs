//! Signals: dispositions, masks, sending, waiting, alternate stacks, interval timers.

use std::sync::Arc;
use std::time::Duration;

use super::{Call, Outcome};
use crate::abi::Errno;
use crate::abi::errno::SysResult;
use crate::abi::signal::*;
use crate::kernel::signal::frame;
use crate::kernel::signal::send::{Origin, send_to_group, send_to_task};
use crate::kernel::task::Task;
use crate::kernel::thread_group::ThreadGroup;
use crate::kernel::timers;

pub fn rt_sigaction(c: &mut Call) -> SysResult {
    let sig = c.arg_u32(0);
    if !valid(sig) || c.args[3] != 8 {
        return Err(Errno::EINVAL);
    }
    let new = if c.args[1] != 0 {
        let b = c.read_bytes(c.args[1], SigAction::SIZE)?;
        let mut arr = [0u8; 32];
        arr.copy_from_slice(&b);
        let a = SigAction::from_bytes(&arr);
        if sig == SIGKILL || sig == SIGSTOP {
            return Err(Errno::EINVAL);
        }
        Some(a)
    } else {
        None
    };
    let tg = c.task.tg();
    let handlers = tg.handlers();
    let old = {
        let mut h = handlers.lock().unwrap_or_else(|e| e.into_inner());
        let old = h.get(sig);
        if let Some(mut a) = new {
            a.mask = a.mask.blockable();
            h.set(sig, a);
        }
        old
    };
    if let Some(a) = new {
        // Setting a signal to be ignored discards it where it is pending.
        let ignored = a.handler == SIG_IGN
            || (a.handler == SIG_DFL && default_action(sig) == DefaultAction::Ignore);
        if ignored {
            tg.lock().shared_pending.discard(sig);
            for t in tg.threads() {
                t.sig().pending.discard(sig);
            }
        }
    }
    if c.args[2] != 0 {
        c.write_bytes(c.args[2], &old.to_bytes())?;
    }
    Ok(0)
}

pub fn rt_sigprocmask(c: &mut Call) -> SysResult {
    if c.args[3] != 8 {
        return Err(Errno::EINVAL);
    }
    let new = if c.args[1] != 0 { Some(SigSet(c.read_u64(c.args[1])?)) } else { None };
    let old = {
        let mut s = c.task.sig();
        let old = s.mask;
        if let Some(n) = new {
            s.mask = match c.arg_i32(0) {
                SIG_BLOCK => SigSet(old.0 | n.0),
                SIG_UNBLOCK => SigSet(old.0 & !n.0),
                SIG_SETMASK => n,
                _ => return Err(Errno::EINVAL),
            }
            .blockable();
        }
        old
    };
    c.task.mask_changed(old);
    if c.args[2] != 0 {
        c.write_bytes(c.args[2], &old.0.to_le_bytes())?;
    }
    Ok(0)
}

pub fn rt_sigreturn(c: &mut Call) -> SysResult {
    let restored = match frame::restore(&c.mm(), &c.ctx.regs) {
        Ok(r) => r,
        Err(_) => {
            crate::kernel::signal::send::force(c.task, SigInfo::kernel(SIGSEGV));
            c.special = Some(Outcome::Registers);
            return Ok(0);
        }
    };
    c.ctx.regs = restored.regs;
    if let Some(fpu) = restored.fpu {
        let mut x = crate::platform::copy_fpu(&c.task.kernel.clean_fpu);
        // SAFETY: kvm_xsave's region is 4096 bytes of u32; the copy fills it exactly.
        unsafe {
            std::ptr::copy_nonoverlapping(
                fpu.as_ptr(),
                x.region.as_mut_ptr().cast::<u8>(),
                frame::XSAVE_BYTES,
            );
        }
        // A corrupted FPU image (e.g. reserved MXCSR bits) falls back to a clean state.
        if c.cpu.set_fpu(&x).is_err() {
            let _ = c.cpu.set_fpu(&c.task.kernel.clean_fpu);
        }
    }
    let old = {
        let mut s = c.task.sig();
        let old = s.mask;
        s.mask = restored.mask;
        let a = restored.altstack;
        if a.flags & SS_DISABLE != 0 {
            s.altstack = Default::default();
        } else if a.size >= MINSIGSTKSZ {
            s.altstack = crate::kernel::signal::AltStack { sp: a.sp, size: a.size, flags: 0 };
        }
        old
    };
    c.task.mask_changed(old);
    c.special = Some(Outcome::Registers);
    Ok(0)
}

fn sender_info(c: &Call, sig: Signal, code: i32) -> SigInfo {
    SigInfo { signo: sig, code, pid: c.task.tgid(), uid: c.task.creds().uid, ..Default::default() }
}

/// Whether `c`'s task may signal `target`.
fn may_signal(c: &Call, target: &ThreadGroup) -> bool {
    let me = c.task.creds();
    if me.has_cap(crate::creds::caps::Capability::KILL) {
        return true;
    }
    target.leader().is_some_and(|t| {
        let tc = t.creds();
        me.euid == tc.uid || me.euid == tc.suid || me.uid == tc.uid || me.uid == tc.suid
    })
}

pub fn kill(c: &mut Call) -> SysResult {
    let (pid, sig) = (c.arg_i32(0), c.arg_u32(1));
    if sig != 0 && !valid(sig) {
        return Err(Errno::EINVAL);
    }
    let ns = c.task.pidns();
    let targets: Vec<Arc<ThreadGroup>> = {
        let tasks = c.task.kernel.tasks();
        match pid {
            p if p > 0 => vec![tasks.proc_in(&ns, p)?.tg.clone()],
            0 => {
                let pgid = tasks.proc(c.task.tgid()).map(|p| p.pgid).ok_or(Errno::ESRCH)?;
                tasks.group_members(pgid)
            }
            // Every process the caller can see but its namespace's init and itself.
            -1 => tasks
                .procs
                .values()
                .filter(|p| {
                    p.tg.tgid != c.task.tgid()
                        && tasks.pid_in(&ns, p.tg.tgid).is_some_and(|local| local > 1)
                })
                .map(|p| p.tg.clone())
                .collect(),
            i32::MIN => return Err(Errno::ESRCH),
            p => tasks.group_members(tasks.global_of(&ns, -p).ok_or(Errno::ESRCH)?),
        }
    };
    let live: Vec<_> =
        targets.into_iter().filter(|t| t.lock().zombie.is_none() || pid > 0).collect();
    if live.is_empty() {
        return Err(Errno::ESRCH);
    }
    let mut sent = false;
    for tg in &live {
        if !may_signal(c, tg) {
            continue;
        }
        sent = true;
        if sig != 0 {
            send_to_group(tg, sender_info(c, sig, SI_USER), Origin::of(&ns, tg));
        }
    }
    if sent { Ok(0) } else { Err(Errno::EPERM) }
}

fn thread_kill(c: &mut Call, tgid: Option<i32>, tid: i32, sig: Signal) -> SysResult {
    if tid <= 0 || (sig != 0 && !valid(sig)) || tgid.is_some_and(|g| g <= 0) {
        return Err(Errno::EINVAL);
    }
    let ns = c.task.pidns();
    let (t, tgid_global) = {
        let tasks = c.task.kernel.tasks();
        let t = tasks.thread_in(&ns, tid)?;
        (t, tgid.map(|g| tasks.global_of(&ns, g)))
    };
    if tgid_global.is_some_and(|g| g != Some(t.tgid())) {
        return Err(Errno::ESRCH);
    }
    if !may_signal(c, &t.tg()) {
        return Err(Errno::EPERM);
    }
    if sig != 0 {
        send_to_task(&t, sender_info(c, sig, SI_TKILL), Origin::of(&ns, &t.tg()));
    }
    Ok(0)
}

pub fn tgkill(c: &mut Call) -> SysResult {
    let (g, t, s) = (c.arg_i32(0), c.arg_i32(1), c.arg_u32(2));
    thread_kill(c, Some(g), t, s)
}

pub fn tkill(c: &mut Call) -> SysResult {
    let (t, s) = (c.arg_i32(0), c.arg_u32(1));
    thread_kill(c, None, t, s)
}

pub fn rt_sigqueueinfo(c: &mut Call) -> SysResult {
    let (pid, sig) = (c.arg_i32(0), c.arg_u32(1));
    if !valid(sig) {
        return Err(Errno::EINVAL);
    }
    let b = c.read_bytes(c.args[2], 128)?;
    let code = i32::from_le_bytes(b[8..12].try_into().map_err(|_| Errno::EFAULT)?);
    if code >= 0 || code == SI_TKILL {
        return Err(Errno::EPERM);
    }
    let value = u64::from_le_bytes(b[24..32].try_into().map_err(|_| Errno::EFAULT)?);
    let ns = c.task.pidns();
    let tg = c.task.kernel.tasks().proc_in(&ns, pid)?.tg.clone();
    let mut info = sender_info(c, sig, code);
    info.value = value;
    send_to_group(&tg, info, Origin::of(&ns, &tg));
    Ok(0)
}

pub fn rt_sigpending(c: &mut Call) -> SysResult {
    let own = c.task.sig().pending.set().0;
    let shared = c.task.tg().lock().shared_pending.set().0;
    let mask = c.task.sig().mask.0;
    c.write_bytes(c.args[0], &((own | shared) & mask).to_le_bytes())?;
    Ok(0)
}

/// Waits with a temporary signal mask until a signal is delivered (sigsuspend, pause).
fn suspend(c: &mut Call, mask: Option<SigSet>) -> SysResult {
    let old = {
        let mut s = c.task.sig();
        let old = s.mask;
        if let Some(m) = mask {
            s.saved_mask = Some(s.mask);
            s.mask = m.blockable();
        }
        old
    };
    c.task.mask_changed(old);
    loop {
        if c.task.block(None).is_err() {
            return Err(Errno::ERESTARTNOHAND);
        }
    }
}

pub fn rt_sigsuspend(c: &mut Call) -> SysResult {
    if c.args[1] != 8 {
        return Err(Errno::EINVAL);
    }
    let m = SigSet(c.read_u64(c.args[0])?);
    suspend(c, Some(m))
}

pub fn pause(c: &mut Call) -> SysResult {
    suspend(c, None)
}

pub fn rt_sigtimedwait(c: &mut Call) -> SysResult {
    if c.args[3] != 8 {
        return Err(Errno::EINVAL);
    }
    let set = SigSet(c.read_u64(c.args[0])?).blockable();
    let deadline = if c.args[2] != 0 {
        let d = super::sys_time::read_timespec(c, c.args[2])?;
        Some(super::sys_time::deadline_after(d))
    } else {
        None
    };
    let task: &Arc<Task> = c.task;
    let tg = task.tg();
    loop {
        let taken = {
            let mut s = task.sig();
            let mut found = None;
            for sig in 1..=NSIG {
                if set.has(sig) && s.pending.has(sig) {
                    found = s.pending.take(sig);
                    break;
                }
            }
            drop(s);
            if found.is_none() {
                let mut st = tg.lock();
                for sig in 1..=NSIG {
                    if set.has(sig) && st.shared_pending.has(sig) {
                        found = st.shared_pending.take(sig);
                        break;
                    }
                }
            }
            found
        };
        if let Some(mut info) = taken {
            tg.timers.delivering(&mut info);
            task.recalc_interrupt();
            if c.args[1] != 0 {
                c.write_bytes(c.args[1], &info.to_bytes())?;
            }
            return Ok(u64::from(info.signo));
        }
        // Only signals outside `set` (deliverable ones) interrupt the wait.
        match task.block(deadline) {
            Ok(()) => {}
            Err(Errno::ETIMEDOUT) => return Err(Errno::EAGAIN),
            // A deliverable signal (one not in `set`) interrupts the wait.
            Err(_) => return Err(Errno::EINTR),
        }
    }
}

pub fn sigaltstack(c: &mut Call) -> SysResult {
    let cur = c.task.sig().altstack;
    let on = cur.contains(c.ctx.regs.rsp);
    if c.args[0] != 0 {
        if on {
            return Err(Errno::EPERM);
        }
        let b = c.read_bytes(c.args[0], 24)?;
        let sp = u64::from_le_bytes(b[0..8].try_into().map_err(|_| Errno::EFAULT)?);
        let flags = i32::from_le_bytes(b[8..12].try_into().map_err(|_| Errno::EFAULT)?);
        let size = u64::from_le_bytes(b[16..24].try_into().map_err(|_| Errno::EFAULT)?);
        let new = if flags & SS_DISABLE != 0 {
            Default::default()
        } else {
            if flags & !(SS_ONSTACK | (1 << 31)) != 0 {
                return Err(Errno::EINVAL);
            }
            if size < MINSIGSTKSZ {
                return Err(Errno::ENOMEM);
            }
            crate::kernel::signal::AltStack { sp, size, flags: 0 }
        };
        c.task.sig().altstack = new;
    }
    if c.args[1] != 0 {
        let mut b = [0u8; 24];
        b[0..8].copy_from_slice(&cur.sp.to_le_bytes());
        let flags = if cur.size == 0 {
            SS_DISABLE
        } else if on {
            SS_ONSTACK
        } else {
            0
        };
        b[8..12].copy_from_slice(&flags.to_le_bytes());
        b[16..24].copy_from_slice(&cur.size.to_le_bytes());
        c.write_bytes(c.args[1], &b)?;
    }
    Ok(0)
}

pub fn alarm(c: &mut Call) -> SysResult {
    let secs = c.arg_u32(0);
    let (old, _) =
        timers::set_itimer_real(&c.task.tg(), Duration::from_secs(u64::from(secs)), Duration::ZERO);
    Ok(old.as_secs() + u64::from(old.subsec_nanos() >= 500_000_000))
}

fn timeval(d: Duration) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0..8].copy_from_slice(&(d.as_secs() as i64).to_le_bytes());
    b[8..16].copy_from_slice(&i64::from(d.subsec_micros()).to_le_bytes());
    b
}

fn read_timeval(c: &Call, addr: u64) -> Result<Duration, Errno> {
    let b = c.read_bytes(addr, 16)?;
    let s = i64::from_le_bytes(b[0..8].try_into().map_err(|_| Errno::EFAULT)?);
    let us = i64::from_le_bytes(b[8..16].try_into().map_err(|_| Errno::EFAULT)?);
    if s < 0 || !(0..1_000_000).contains(&us) {
        return Err(Errno::EINVAL);
    }
    Ok(Duration::new(s as u64, us as u32 * 1000))
}

const ITIMER_REAL: i32 = 0;

pub fn setitimer(c: &mut Call) -> SysResult {
    if c.arg_i32(0) != ITIMER_REAL {
        return Err(Errno::EINVAL);
    }
    let (interval, value) = if c.args[1] != 0 {
        (read_timeval(c, c.args[1])?, read_timeval(c, c.args[1] + 16)?)
    } else {
        Default::default()
    };
    let (old_v, old_i) = timers::set_itimer_real(&c.task.tg(), value, interval);
    if c.args[2] != 0 {
        let mut b = timeval(old_i).to_vec();
        b.extend(timeval(old_v));
        c.write_bytes(c.args[2], &b)?;
    }
    Ok(0)
}

pub fn getitimer(c: &mut Call) -> SysResult {
    if c.arg_i32(0) != ITIMER_REAL {
        return Err(Errno::EINVAL);
    }
    let (v, i) = timers::get_itimer_real(&c.task.tg());
    let mut b = timeval(i).to_vec();
    b.extend(timeval(v));
    c.write_bytes(c.args[1], &b)?;
    Ok(0)
}
