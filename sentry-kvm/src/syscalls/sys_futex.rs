//! futex(2).

use std::time::Duration;

use super::Call;
use crate::abi::Errno;
use crate::abi::errno::SysResult;
use crate::kernel::futex::*;

pub fn futex(c: &mut Call) -> SysResult {
    let (addr, op, val) = (c.args[0], c.arg_u32(1), c.arg_u32(2));
    let private = op & FUTEX_PRIVATE_FLAG != 0;
    let cmd = op & !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
    let mm = c.mm();
    let futexes = &c.task.kernel.futexes;
    match cmd {
        FUTEX_WAIT | FUTEX_WAIT_BITSET => {
            let bitset = if cmd == FUTEX_WAIT { FUTEX_BITSET_MATCH_ANY } else { c.arg_u32(5) };
            let deadline = if c.args[3] != 0 {
                let t = super::sys_time::read_timespec(c, c.args[3])?;
                if cmd == FUTEX_WAIT {
                    Some(super::sys_time::deadline_after(t))
                } else {
                    // Absolute, on CLOCK_MONOTONIC or CLOCK_REALTIME.
                    let clock = if op & FUTEX_CLOCK_REALTIME != 0 {
                        libc::CLOCK_REALTIME
                    } else {
                        libc::CLOCK_MONOTONIC
                    };
                    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
                    // SAFETY: clock_gettime into a local.
                    unsafe { libc::clock_gettime(clock, &mut ts) };
                    let now = Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32);
                    Some(super::sys_time::deadline_after(t.saturating_sub(now)))
                }
            } else {
                None
            };
            let key = FutexKey::of(&mm, addr, private)?;
            match futexes.wait(c.task, key, addr, val, bitset, deadline) {
                Ok(()) => Ok(0),
                Err(Errno::ETIMEDOUT) => Err(Errno::ETIMEDOUT),
                Err(e) if e.is_restart() => {
                    Err(if deadline.is_some() { Errno::EINTR } else { Errno::ERESTARTSYS })
                }
                Err(e) => Err(e),
            }
        }
        FUTEX_WAKE | FUTEX_WAKE_BITSET => {
            let bitset = if cmd == FUTEX_WAKE { FUTEX_BITSET_MATCH_ANY } else { c.arg_u32(5) };
            if bitset == 0 {
                return Err(Errno::EINVAL);
            }
            let key = FutexKey::of(&mm, addr, private)?;
            Ok(u64::from(futexes.wake(key, val, bitset)))
        }
        FUTEX_REQUEUE | FUTEX_CMP_REQUEUE => {
            let addr2 = c.args[4];
            let from = FutexKey::of(&mm, addr, private)?;
            let to = FutexKey::of(&mm, addr2, private)?;
            let expected = (cmd == FUTEX_CMP_REQUEUE).then(|| c.arg_u32(5));
            let requeue = c.args[3] as u32;
            Ok(u64::from(futexes.requeue(&mm, from, to, addr, val, requeue, expected)?))
        }
        FUTEX_WAKE_OP => {
            let addr2 = c.args[4];
            let encoded = c.arg_u32(5);
            let k1 = FutexKey::of(&mm, addr, private)?;
            let k2 = FutexKey::of(&mm, addr2, private)?;
            let op_kind = (encoded >> 28) & 7;
            let shift_arg = encoded & (8 << 28) != 0;
            let cmp = (encoded >> 24) & 15;
            let mut oparg = (encoded >> 12) & 0xfff;
            let cmparg = encoded & 0xfff;
            if shift_arg {
                oparg = 1u32.checked_shl(oparg).unwrap_or(0);
            }
            // Atomically apply the operation to *addr2.
            let old = loop {
                let cur = c.read_u32(addr2)?;
                let new = match op_kind {
                    0 => oparg,
                    1 => cur.wrapping_add(oparg),
                    2 => cur | oparg,
                    3 => cur & !oparg,
                    4 => cur ^ oparg,
                    _ => return Err(Errno::ENOSYS),
                };
                if mm.cmpxchg_u32(addr2, cur, new)? == cur {
                    break cur;
                }
            };
            let hit = match cmp {
                0 => old == cmparg,
                1 => old != cmparg,
                2 => (old as i32) < cmparg as i32,
                3 => (old as i32) <= cmparg as i32,
                4 => (old as i32) > cmparg as i32,
                5 => (old as i32) >= cmparg as i32,
                _ => return Err(Errno::ENOSYS),
            };
            let mut n = futexes.wake(k1, val, FUTEX_BITSET_MATCH_ANY);
            if hit {
                n += futexes.wake(k2, c.args[3] as u32, FUTEX_BITSET_MATCH_ANY);
            }
            Ok(u64::from(n))
        }
        _ => Err(Errno::ENOSYS),
    }
}
