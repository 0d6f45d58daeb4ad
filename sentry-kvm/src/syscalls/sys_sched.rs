//! Scheduling attributes of tasks: nice values (getpriority/setpriority) and CPU affinity
//! (sched_getaffinity/sched_setaffinity). Both are kept per task and inherited by clone and
//! fork, as on Linux; the host scheduler is not told (every task's host thread runs at the
//! Sentry's own priority, on the sandbox's vCPUs).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Call;
use crate::abi::Errno;
use crate::abi::errno::SysResult;
use crate::kernel::task::Task;

const PRIO_PROCESS: u32 = 0;
const PRIO_PGRP: u32 = 1;
const PRIO_USER: u32 = 2;

pub const MIN_NICE: i32 = -20;
pub const MAX_NICE: i32 = 19;

/// The tasks `which`/`who` name (an empty list: none matched).
fn prio_targets(c: &Call, which: u32, who: i32) -> Result<Vec<Arc<Task>>, Errno> {
    let kernel = &c.task.kernel;
    match which {
        PRIO_PROCESS => {
            if who == 0 {
                return Ok(vec![c.task.clone()]);
            }
            Ok(kernel.tasks().thread_in(&c.task.pidns(), who).into_iter().collect())
        }
        PRIO_PGRP => {
            let ns = c.task.pidns();
            let tasks = kernel.tasks();
            let pgid = if who == 0 {
                tasks.proc(c.task.tgid()).map(|p| p.pgid).ok_or(Errno::ESRCH)?
            } else {
                match tasks.global_of(&ns, who) {
                    Some(g) => g,
                    None => return Ok(Vec::new()),
                }
            };
            let groups = tasks.group_members(pgid);
            drop(tasks);
            Ok(groups.iter().flat_map(|g| g.threads()).collect())
        }
        PRIO_USER => {
            let uid = if who == 0 { c.task.creds().uid } else { who as u32 };
            let ns = c.task.pidns();
            let all: Vec<Arc<Task>> =
                kernel.tasks().threads.values().filter(|t| ns.sees(&t.pidns())).cloned().collect();
            Ok(all.into_iter().filter(|t| t.creds().uid == uid).collect())
        }
        _ => Err(Errno::EINVAL),
    }
}

/// getpriority(2): the highest priority (lowest nice) of the tasks named, as `20 - nice`.
pub fn getpriority(c: &mut Call) -> SysResult {
    let targets = prio_targets(c, c.arg_u32(0), c.arg_i32(1))?;
    targets.iter().map(|t| (20 - t.nice.load(Ordering::Relaxed)) as u64).max().ok_or(Errno::ESRCH)
}

/// setpriority(2): sets the nice value (clamped to -20..=19) of every task named.
pub fn setpriority(c: &mut Call) -> SysResult {
    let targets = prio_targets(c, c.arg_u32(0), c.arg_i32(1))?;
    let nice = c.arg_i32(2).clamp(MIN_NICE, MAX_NICE);
    let me = c.task.creds();
    let mut result = Err(Errno::ESRCH);
    for t in targets {
        let theirs = t.creds();
        // Linux's set_one_prio: the owner (or a privileged caller) may renice; only a
        // privileged one may lower the nice value.
        if theirs.uid != me.euid
            && theirs.euid != me.euid
            && !me.has_cap(crate::creds::caps::Capability::SYS_NICE)
        {
            result = Err(Errno::EPERM);
            continue;
        }
        if nice < t.nice.load(Ordering::Relaxed)
            && !me.has_cap(crate::creds::caps::Capability::SYS_NICE)
        {
            result = Err(Errno::EACCES);
            continue;
        }
        if result == Err(Errno::ESRCH) {
            result = Ok(0);
        }
        t.nice.store(nice, Ordering::Relaxed);
    }
    result
}

/// The sandbox's vCPUs as a mask (at most 64).
fn all_cpus(c: &Call) -> u64 {
    let cpus = c.task.kernel.info().cpus.clamp(1, 64);
    if cpus == 64 { u64::MAX } else { (1u64 << cpus) - 1 }
}

fn affinity_target(c: &Call, pid: i32) -> Result<Arc<Task>, Errno> {
    if pid == 0 {
        return Ok(c.task.clone());
    }
    c.task.kernel.tasks().thread_in(&c.task.pidns(), pid)
}

pub fn sched_getaffinity(c: &mut Call) -> SysResult {
    let len = u64::from(c.arg_u32(1));
    let cpus = u64::from(c.task.kernel.info().cpus.max(1));
    if len * 8 < cpus || !len.is_multiple_of(8) {
        return Err(Errno::EINVAL);
    }
    let t = affinity_target(c, c.arg_i32(0))?;
    let mask = t.affinity.load(Ordering::Relaxed) & all_cpus(c);
    c.write_bytes(c.args[2], &mask.to_le_bytes())?;
    Ok(8)
}

/// sched_setaffinity(2): accepted when the set includes one of the sandbox's vCPUs; the
/// task's mask becomes that intersection.
pub fn sched_setaffinity(c: &mut Call) -> SysResult {
    let len = (c.arg_u32(1) as usize).min(8);
    let mut b = [0u8; 8];
    if len > 0 {
        c.mm().copy_in(c.args[2], &mut b[..len])?;
    }
    let t = affinity_target(c, c.arg_i32(0))?;
    let (me, theirs) = (c.task.creds(), t.creds());
    if theirs.uid != me.euid
        && theirs.euid != me.euid
        && !me.has_cap(crate::creds::caps::Capability::SYS_NICE)
    {
        return Err(Errno::EPERM);
    }
    let mask = u64::from_le_bytes(b) & all_cpus(c);
    if mask == 0 {
        return Err(Errno::EINVAL);
    }
    t.affinity.store(mask, Ordering::Relaxed);
    Ok(0)
}
