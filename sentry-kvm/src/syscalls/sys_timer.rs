//! POSIX timers: timer_create, timer_settime, timer_gettime, timer_getoverrun, timer_delete.

use std::sync::Arc;
use std::time::Duration;

use super::Call;
use super::sys_time::{read_timespec, timespec_bytes};
use crate::abi::Errno;
use crate::abi::errno::SysResult;
use crate::abi::signal::{NSIG, SIGALRM};
use crate::kernel::posix_timer::{Notify, TimerClock, TimerSpec};

const SIGEV_SIGNAL: i32 = 0;
const SIGEV_NONE: i32 = 1;
/// Handled by the C library with a helper thread; to the kernel it is SIGEV_SIGNAL.
const SIGEV_THREAD: i32 = 2;
const SIGEV_THREAD_ID: i32 = 4;
const TIMER_ABSTIME: u32 = 1;
/// struct sigevent: value (8), signo (4), notify (4), then the thread id.
const SIGEVENT_READ: usize = 20;

fn valid_signal(signo: i32) -> Result<u32, Errno> {
    u32::try_from(signo).ok().filter(|s| (1..=NSIG).contains(s)).ok_or(Errno::EINVAL)
}

/// The notification a struct sigevent at `addr` asks for (None: no sigevent, SIGALRM with the
/// timer's id as its value).
fn read_sigevent(c: &Call, addr: u64) -> Result<Option<Notify>, Errno> {
    if addr == 0 {
        return Ok(None);
    }
    let b = c.read_bytes(addr, SIGEVENT_READ)?;
    let field = |at: usize| i32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let value = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
    let (signo, notify, tid) = (field(8), field(12), field(16));
    let notify = match notify {
        SIGEV_NONE => Notify::Nothing,
        SIGEV_SIGNAL | SIGEV_THREAD => Notify::Process { signo: valid_signal(signo)?, value },
        SIGEV_THREAD_ID => {
            let signo = valid_signal(signo)?;
            let task =
                c.task.kernel.tasks().thread_in(&c.task.pidns(), tid).map_err(|_| Errno::EINVAL)?;
            // Only a thread of the caller's own process.
            if task.tgid() != c.task.tgid() {
                return Err(Errno::EINVAL);
            }
            Notify::Thread { task: Arc::downgrade(&task), signo, value }
        }
        _ => return Err(Errno::EINVAL),
    };
    Ok(Some(notify))
}

fn itimerspec_bytes(s: TimerSpec) -> [u8; 32] {
    let mut b = [0u8; 32];
    b[..16].copy_from_slice(&timespec_bytes(s.interval));
    b[16..].copy_from_slice(&timespec_bytes(s.value));
    b
}

pub fn timer_create(c: &mut Call) -> SysResult {
    let clock = TimerClock::from_id(c.arg_i32(0)).ok_or(Errno::EINVAL)?;
    let (sev, out) = (c.args[1], c.args[2]);
    let notify = read_sigevent(c, sev)?;
    let tg = c.task.tg();
    let id = tg.timers.create(&tg, c.task, clock, |id| {
        notify.unwrap_or(Notify::Process { signo: SIGALRM, value: id as u32 as u64 })
    })?;
    if let Err(e) = c.write_bytes(out, &id.to_le_bytes()) {
        let _ = tg.timers.delete(id);
        return Err(e);
    }
    Ok(0)
}

pub fn timer_settime(c: &mut Call) -> SysResult {
    let (id, flags, new, old) = (c.arg_i32(0), c.arg_u32(1), c.args[2], c.args[3]);
    let timer = c.task.tg().timers.get(id)?;
    if new == 0 {
        return Err(Errno::EINVAL);
    }
    let value_at = new.checked_add(16).ok_or(Errno::EFAULT)?;
    // Linux keeps times in signed 64-bit nanoseconds: longer ones saturate (292 years).
    let ktime_max = Duration::from_nanos(i64::MAX as u64);
    let spec = TimerSpec {
        interval: read_timespec(c, new)?.min(ktime_max),
        value: read_timespec(c, value_at)?.min(ktime_max),
    };
    let before = timer.set(spec, flags & TIMER_ABSTIME != 0);
    if old != 0 {
        c.write_bytes(old, &itimerspec_bytes(before))?;
    }
    Ok(0)
}

pub fn timer_gettime(c: &mut Call) -> SysResult {
    let timer = c.task.tg().timers.get(c.arg_i32(0))?;
    c.write_bytes(c.args[1], &itimerspec_bytes(timer.get()))?;
    Ok(0)
}

pub fn timer_getoverrun(c: &mut Call) -> SysResult {
    let timer = c.task.tg().timers.get(c.arg_i32(0))?;
    Ok(timer.overrun_last() as u64)
}

pub fn timer_delete(c: &mut Call) -> SysResult {
    c.task.tg().timers.delete(c.arg_i32(0))?;
    Ok(0)
}
