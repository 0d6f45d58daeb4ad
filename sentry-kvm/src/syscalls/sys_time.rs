//! Clocks and sleeping.

use std::time::{Duration, Instant};

use super::Call;
use crate::abi::Errno;
use crate::abi::errno::SysResult;

const CLOCK_REALTIME: i32 = 0;
const CLOCK_MONOTONIC: i32 = 1;
const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;
const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
const CLOCK_MONOTONIC_RAW: i32 = 4;
const CLOCK_REALTIME_COARSE: i32 = 5;
const CLOCK_MONOTONIC_COARSE: i32 = 6;
const CLOCK_BOOTTIME: i32 = 7;
const TIMER_ABSTIME: u32 = 1;

pub fn read_timespec(c: &Call, addr: u64) -> Result<Duration, Errno> {
    let b = c.read_bytes(addr, 16)?;
    let s = i64::from_le_bytes(b[0..8].try_into().map_err(|_| Errno::EFAULT)?);
    let ns = i64::from_le_bytes(b[8..16].try_into().map_err(|_| Errno::EFAULT)?);
    if s < 0 || !(0..1_000_000_000).contains(&ns) {
        return Err(Errno::EINVAL);
    }
    Ok(Duration::new(s as u64, ns as u32))
}

pub fn timespec_bytes(d: Duration) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0..8].copy_from_slice(&(d.as_secs() as i64).to_le_bytes());
    b[8..16].copy_from_slice(&i64::from(d.subsec_nanos()).to_le_bytes());
    b
}

fn host_clock(id: i32) -> Result<Duration, Errno> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime into a local.
    if unsafe { libc::clock_gettime(id, &mut ts) } != 0 {
        return Err(Errno::EINVAL);
    }
    Ok(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

fn clock_now(c: &Call, id: i32) -> Result<Duration, Errno> {
    match id {
        CLOCK_REALTIME | CLOCK_REALTIME_COARSE => host_clock(libc::CLOCK_REALTIME),
        CLOCK_MONOTONIC | CLOCK_MONOTONIC_COARSE => host_clock(libc::CLOCK_MONOTONIC),
        // The host's own: what the vDSO follows too.
        CLOCK_MONOTONIC_RAW => host_clock(libc::CLOCK_MONOTONIC_RAW),
        CLOCK_BOOTTIME => host_clock(libc::CLOCK_BOOTTIME),
        CLOCK_PROCESS_CPUTIME_ID => {
            let tg = c.task.tg();
            let done = tg.lock().usage.user_us;
            let live: u64 = tg.threads().iter().map(|t| t.cpu_us()).sum();
            Ok(Duration::from_micros(done + live))
        }
        CLOCK_THREAD_CPUTIME_ID => Ok(Duration::from_micros(c.task.cpu_us())),
        _ => Err(Errno::EINVAL),
    }
}

pub fn clock_gettime(c: &mut Call) -> SysResult {
    let now = clock_now(c, c.arg_i32(0))?;
    c.write_bytes(c.args[1], &timespec_bytes(now))?;
    Ok(0)
}

pub fn clock_getres(c: &mut Call) -> SysResult {
    clock_now(c, c.arg_i32(0))?;
    if c.args[1] != 0 {
        c.write_bytes(c.args[1], &timespec_bytes(Duration::from_nanos(1)))?;
    }
    Ok(0)
}

pub fn gettimeofday(c: &mut Call) -> SysResult {
    if c.args[0] != 0 {
        let now = host_clock(libc::CLOCK_REALTIME)?;
        let mut b = [0u8; 16];
        b[0..8].copy_from_slice(&(now.as_secs() as i64).to_le_bytes());
        b[8..16].copy_from_slice(&i64::from(now.subsec_micros()).to_le_bytes());
        c.write_bytes(c.args[0], &b)?;
    }
    if c.args[1] != 0 {
        c.write_bytes(c.args[1], &[0u8; 8])?;
    }
    Ok(0)
}

pub fn time(c: &mut Call) -> SysResult {
    let now = host_clock(libc::CLOCK_REALTIME)?.as_secs();
    if c.args[0] != 0 {
        c.write_bytes(c.args[0], &now.to_le_bytes())?;
    }
    Ok(now)
}

/// Sleeps until `deadline`; on a signal, records the remainder for a restart.
fn sleep_until(c: &mut Call, deadline: Instant, rem: u64) -> SysResult {
    loop {
        match c.task.block(Some(deadline)) {
            Err(Errno::ETIMEDOUT) => return Ok(0),
            Ok(()) => {
                if Instant::now() >= deadline {
                    return Ok(0);
                }
            }
            Err(_) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if rem != 0 {
                    c.write_bytes(rem, &timespec_bytes(left))?;
                }
                *c.task.restart_deadline.lock().unwrap_or_else(|e| e.into_inner()) = Some(deadline);
                return Err(Errno::ERESTART_RESTARTBLOCK);
            }
        }
    }
}

/// The longest wait a guest can ask for that is kept as asked: a century. Longer ones (up to
/// the ~292 billion years a timespec holds) end at that, rather than overflowing the host's
/// clock arithmetic.
const LONGEST_WAIT: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The instant `d` from now, for a timeout the guest gave.
pub fn deadline_after(d: Duration) -> Instant {
    Instant::now() + d.min(LONGEST_WAIT)
}

/// A sleep restarted after an interruption continues towards its original deadline.
fn restart_deadline(c: &Call, fresh: Instant) -> Instant {
    c.task.restart_deadline.lock().unwrap_or_else(|e| e.into_inner()).take().unwrap_or(fresh)
}

pub fn nanosleep(c: &mut Call) -> SysResult {
    let d = read_timespec(c, c.args[0])?;
    let deadline = restart_deadline(c, deadline_after(d));
    let rem = c.args[1];
    sleep_until(c, deadline, rem)
}

pub fn clock_nanosleep(c: &mut Call) -> SysResult {
    let (id, flags) = (c.arg_i32(0), c.arg_u32(1));
    if matches!(id, CLOCK_THREAD_CPUTIME_ID) {
        return Err(Errno::EINVAL);
    }
    let t = read_timespec(c, c.args[2])?;
    let deadline = if flags & TIMER_ABSTIME != 0 {
        let now = clock_now(c, id)?;
        deadline_after(t.saturating_sub(now))
    } else {
        restart_deadline(c, deadline_after(t))
    };
    let rem = if flags & TIMER_ABSTIME != 0 { 0 } else { c.args[3] };
    sleep_until(c, deadline, rem)
}
