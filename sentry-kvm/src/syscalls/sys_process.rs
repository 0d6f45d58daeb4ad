//! Processes and threads: identity, creation, exec, exit, wait, groups and sessions, limits.

use std::sync::atomic::Ordering;

use super::{Call, Outcome};
use crate::abi::Errno;
use crate::abi::errno::SysResult;
use crate::abi::signal::SIGCHLD;
use crate::creds::caps::Capability;
use crate::kernel::clone::{self, CloneArgs};
use crate::kernel::exec;
use crate::kernel::exit::{self, WaitFor};
use crate::kernel::signal::send::group_exit;
use crate::kernel::thread_group::ExitStatus;

pub fn getpid(c: &mut Call) -> SysResult {
    Ok(c.task.pid_seen(c.task.tgid()) as u64)
}

pub fn gettid(c: &mut Call) -> SysResult {
    Ok(c.task.pid_seen(c.task.tid()) as u64)
}

/// The parent's id, 0 when it is outside the caller's PID namespace (a namespace's init).
pub fn getppid(c: &mut Call) -> SysResult {
    let ns = c.task.pidns();
    let tasks = c.task.kernel.tasks();
    let parent = tasks.proc(c.task.tgid()).map(|p| p.parent).unwrap_or(0);
    Ok(tasks.pid_or_zero(&ns, parent) as u64)
}

pub fn exit(c: &mut Call) -> SysResult {
    c.special = Some(Outcome::Exit(c.arg_i32(0) & 0xff));
    Ok(0)
}

pub fn exit_group(c: &mut Call) -> SysResult {
    group_exit(&c.task.tg(), ExitStatus::Exited(c.arg_i32(0) & 0xff));
    c.special = Some(Outcome::Exit(c.arg_i32(0) & 0xff));
    Ok(0)
}

pub fn set_tid_address(c: &mut Call) -> SysResult {
    c.task.clear_child_tid.store(c.args[0], Ordering::Relaxed);
    Ok(c.task.pid_seen(c.task.tid()) as u64)
}

pub fn set_robust_list(c: &mut Call) -> SysResult {
    if c.args[1] != 24 {
        return Err(Errno::EINVAL);
    }
    c.task.robust_list.store(c.args[0], Ordering::Relaxed);
    Ok(0)
}

pub fn get_robust_list(c: &mut Call) -> SysResult {
    let pid = c.arg_i32(0);
    let head = if pid == 0 {
        c.task.robust_list.load(Ordering::Relaxed)
    } else {
        let t = c.task.kernel.tasks().thread_in(&c.task.pidns(), pid)?;
        t.robust_list.load(Ordering::Relaxed)
    };
    c.write_bytes(c.args[1], &head.to_le_bytes())?;
    c.write_bytes(c.args[2], &24u64.to_le_bytes())?;
    Ok(0)
}

const ARCH_SET_GS: u32 = 0x1001;
const ARCH_SET_FS: u32 = 0x1002;
const ARCH_GET_FS: u32 = 0x1003;
const ARCH_GET_GS: u32 = 0x1004;
const ARCH_GET_CPUID: u32 = 0x1011;
const ARCH_SET_CPUID: u32 = 0x1012;

pub fn arch_prctl(c: &mut Call) -> SysResult {
    let canonical = |a: u64| a < crate::mm::address_space::TASK_SIZE;
    match c.arg_u32(0) {
        ARCH_SET_FS if canonical(c.args[1]) => c.ctx.fs_base = c.args[1],
        ARCH_SET_GS if canonical(c.args[1]) => c.ctx.gs_base = c.args[1],
        ARCH_SET_FS | ARCH_SET_GS => return Err(Errno::EPERM),
        ARCH_GET_FS => c.write_bytes(c.args[1], &c.ctx.fs_base.to_le_bytes())?,
        ARCH_GET_GS => c.write_bytes(c.args[1], &c.ctx.gs_base.to_le_bytes())?,
        ARCH_GET_CPUID => return Ok(1),
        ARCH_SET_CPUID => return Err(Errno::ENODEV),
        _ => return Err(Errno::EINVAL),
    }
    Ok(0)
}

fn do_clone(c: &mut Call, args: CloneArgs) -> SysResult {
    let ctx = *c.ctx;
    clone::clone(c.task, &ctx, c.cpu, args).map(|tid| tid as u64)
}

pub fn clone(c: &mut Call) -> SysResult {
    // x86-64 argument order: flags, stack, parent_tid, child_tid, tls.
    let args = CloneArgs {
        flags: c.args[0],
        stack: c.args[1],
        parent_tid: c.args[2],
        child_tid: c.args[3],
        tls: c.args[4],
    };
    do_clone(c, args)
}

pub fn clone3(c: &mut Call) -> SysResult {
    let size = c.args[1] as usize;
    if !(64..=4096).contains(&size) {
        return Err(Errno::EINVAL);
    }
    let b = c.read_bytes(c.args[0], 88.min(size))?;
    let q = |i: usize| {
        b.get(i * 8..i * 8 + 8)
            .map(|s| u64::from_le_bytes(s.try_into().unwrap_or([0; 8])))
            .unwrap_or(0)
    };
    // struct clone_args: flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size,
    // tls, set_tid, set_tid_size, cgroup.
    // pidfd and cgroup are read only with CLONE_PIDFD / CLONE_INTO_CGROUP (glibc fills pidfd
    // regardless); choosing child tids needs privileges the sandbox does not grant.
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    if q(0) & (clone::CLONE_PIDFD | CLONE_INTO_CGROUP) != 0 {
        return Err(Errno::EINVAL);
    }
    if q(8) != 0 || q(9) != 0 {
        return Err(Errno::EPERM);
    }
    let exit_signal = q(4);
    if exit_signal > 64 {
        return Err(Errno::EINVAL);
    }
    let stack = if q(5) != 0 { q(5) + q(6) } else { 0 };
    let args = CloneArgs {
        flags: (q(0) & !0xff) | exit_signal,
        stack,
        parent_tid: q(3),
        child_tid: q(2),
        tls: q(7),
    };
    do_clone(c, args)
}

pub fn fork(c: &mut Call) -> SysResult {
    do_clone(
        c,
        CloneArgs { flags: u64::from(SIGCHLD), stack: 0, parent_tid: 0, child_tid: 0, tls: 0 },
    )
}

pub fn vfork(c: &mut Call) -> SysResult {
    let flags = clone::CLONE_VM | clone::CLONE_VFORK | u64::from(SIGCHLD);
    do_clone(c, CloneArgs { flags, stack: 0, parent_tid: 0, child_tid: 0, tls: 0 })
}

/// Reads a NULL-terminated array of string pointers.
fn read_strv(c: &Call, addr: u64) -> Result<Vec<Vec<u8>>, Errno> {
    let mut out = Vec::new();
    if addr == 0 {
        return Ok(out);
    }
    let mut total = 0usize;
    for i in 0.. {
        let p = c.read_u64(addr + 8 * i)?;
        if p == 0 {
            break;
        }
        let s = c.mm().read_cstring(p, crate::loader::ARG_MAX)?;
        total += s.len() + 1;
        if total > crate::loader::ARG_MAX || out.len() > 0x7fff_ffff / 8 {
            return Err(Errno::E2BIG);
        }
        out.push(s);
    }
    Ok(out)
}

fn do_execve(
    c: &mut Call,
    dirfd: i32,
    path: Vec<u8>,
    argv: u64,
    envp: u64,
    flags: u32,
) -> SysResult {
    let argv = read_strv(c, argv)?;
    let envp = read_strv(c, envp)?;
    let start = if path.is_empty() && flags & crate::abi::stat::AT_EMPTY_PATH != 0 {
        return Err(Errno::ENOSYS);
    } else if path.first() == Some(&b'/') {
        c.task.fs().root()
    } else {
        c.start_dir(dirfd)?
    };
    exec::execve(c.task, c.ctx, c.cpu, &start, &path, argv, envp)?;
    c.special = Some(Outcome::Registers);
    Ok(0)
}

pub fn execve(c: &mut Call) -> SysResult {
    let path = c.path(0)?;
    do_execve(c, crate::abi::stat::AT_FDCWD, path, c.args[1], c.args[2], 0)
}

pub fn execveat(c: &mut Call) -> SysResult {
    let path = c.path(1)?;
    do_execve(c, c.arg_i32(0), path, c.args[2], c.args[3], c.arg_u32(4))
}

/// Which children a wait is for, in global ids (an id the caller cannot see matches nothing:
/// ECHILD).
fn wait_target(pid: i32, c: &Call) -> Result<WaitFor, Errno> {
    let ns = c.task.pidns();
    let tasks = c.task.kernel.tasks();
    let global = |local: i32| tasks.global_of(&ns, local).ok_or(Errno::ECHILD);
    Ok(match pid {
        -1 => WaitFor::Any,
        0 => WaitFor::Pgid(tasks.proc(c.task.tgid()).map(|p| p.pgid).ok_or(Errno::ESRCH)?),
        i32::MIN => return Err(Errno::ESRCH),
        p if p < -1 => WaitFor::Pgid(global(-p)?),
        p => WaitFor::Pid(global(p)?),
    })
}

fn rusage_bytes(u: &crate::kernel::thread_group::Usage) -> [u8; 144] {
    let mut b = [0u8; 144];
    let tv = |us: u64| ((us / 1_000_000) as i64, (us % 1_000_000) as i64);
    let (s, us) = tv(u.user_us);
    b[0..8].copy_from_slice(&s.to_le_bytes());
    b[8..16].copy_from_slice(&us.to_le_bytes());
    let (s, us) = tv(u.sys_us);
    b[16..24].copy_from_slice(&s.to_le_bytes());
    b[24..32].copy_from_slice(&us.to_le_bytes());
    b[32..40].copy_from_slice(&(u.maxrss_kb as i64).to_le_bytes());
    b
}

pub fn wait4(c: &mut Call) -> SysResult {
    let options = c.arg_u32(2);
    if options & !(exit::WNOHANG | exit::WUNTRACED | exit::WCONTINUED | exit::WALL | exit::WCLONE)
        != 0
    {
        return Err(Errno::EINVAL);
    }
    let who = wait_target(c.arg_i32(0), c)?;
    match exit::wait(c.task, who, options | exit::WEXITED)? {
        None => Ok(0),
        Some(r) => {
            if c.args[1] != 0 {
                c.write_bytes(c.args[1], &r.status.to_le_bytes())?;
            }
            if c.args[3] != 0 {
                c.write_bytes(c.args[3], &rusage_bytes(&r.usage))?;
            }
            Ok(c.task.pid_seen(r.pid) as u64)
        }
    }
}

pub fn waitid(c: &mut Call) -> SysResult {
    const P_ALL: u32 = 0;
    const P_PID: u32 = 1;
    const P_PGID: u32 = 2;
    let options = c.arg_u32(3);
    if options & (exit::WEXITED | exit::WSTOPPED | exit::WCONTINUED) == 0 {
        return Err(Errno::EINVAL);
    }
    let id = c.arg_i32(1);
    let who = match c.arg_u32(0) {
        P_ALL => WaitFor::Any,
        P_PID if id > 0 => wait_target(id, c)?,
        P_PGID => wait_target(if id == 0 { 0 } else { -id }, c)?,
        _ => return Err(Errno::EINVAL),
    };
    let r = exit::wait(c.task, who, options)?;
    if c.args[2] != 0 {
        let mut info = [0u8; 128];
        if let Some(r) = r {
            info[0..4].copy_from_slice(&(SIGCHLD as i32).to_le_bytes());
            info[8..12].copy_from_slice(&r.code.to_le_bytes());
            info[16..20].copy_from_slice(&c.task.pid_seen(r.pid).to_le_bytes());
            info[24..28].copy_from_slice(&r.si_status.to_le_bytes());
        }
        c.write_bytes(c.args[2], &info)?;
    }
    if c.args[4] != 0 {
        let u = r.map(|r| r.usage).unwrap_or_default();
        c.write_bytes(c.args[4], &rusage_bytes(&u))?;
    }
    Ok(0)
}

/// unshare(2): of the namespaces, PID ones only (the caller's next child starts a new one);
/// the others are refused as clone refuses them.
pub fn unshare(c: &mut Call) -> SysResult {
    let flags = c.args[0];
    if flags & !clone::CLONE_NEWPID != 0 {
        return Err(if flags & clone::NAMESPACES != 0 { Errno::EPERM } else { Errno::EINVAL });
    }
    if flags & clone::CLONE_NEWPID != 0 {
        if !c.task.creds().has_cap(Capability::SYS_ADMIN) {
            return Err(Errno::EPERM);
        }
        c.task.unshare_pidns()?;
    }
    Ok(0)
}

// ---- process groups and sessions ----------------------------------------------------------

/// The process `pid` names in the caller's namespace (0: the caller), as a global id.
fn process_arg(c: &Call, pid: i32) -> Result<i32, Errno> {
    if pid == 0 {
        return Ok(c.task.tgid());
    }
    if pid < 0 {
        return Err(Errno::ESRCH);
    }
    c.task.pid_global(pid).ok_or(Errno::ESRCH)
}

pub fn getpgid(c: &mut Call) -> SysResult {
    let pid = process_arg(c, c.arg_i32(0))?;
    let ns = c.task.pidns();
    let tasks = c.task.kernel.tasks();
    Ok(tasks.pid_or_zero(&ns, tasks.proc(pid).ok_or(Errno::ESRCH)?.pgid) as u64)
}

pub fn getpgrp(c: &mut Call) -> SysResult {
    c.args[0] = 0;
    getpgid(c)
}

pub fn getsid(c: &mut Call) -> SysResult {
    let pid = process_arg(c, c.arg_i32(0))?;
    let ns = c.task.pidns();
    let tasks = c.task.kernel.tasks();
    Ok(tasks.pid_or_zero(&ns, tasks.proc(pid).ok_or(Errno::ESRCH)?.sid) as u64)
}

pub fn setpgid(c: &mut Call) -> SysResult {
    let me = c.task.tgid();
    if c.arg_i32(1) < 0 {
        return Err(Errno::EINVAL);
    }
    let pid = process_arg(c, c.arg_i32(0))?;
    let pgid = if c.arg_i32(1) == 0 {
        pid
    } else {
        // A group the caller cannot name is in no session of its own.
        c.task.pid_global(c.arg_i32(1)).ok_or(Errno::EPERM)?
    };
    let mut tasks = c.task.kernel.tasks();
    let my_sid = tasks.proc(me).ok_or(Errno::ESRCH)?.sid;
    let target = tasks.proc(pid).ok_or(Errno::ESRCH)?;
    if pid != me && target.parent != me {
        return Err(Errno::ESRCH);
    }
    if pid != me && target.tg.lock().did_exec {
        return Err(Errno::EACCES);
    }
    if target.sid != my_sid || target.sid == pid {
        return Err(Errno::EPERM);
    }
    if pgid != pid && !tasks.group_in_session(pgid, my_sid) {
        return Err(Errno::EPERM);
    }
    if let Some(t) = tasks.proc_mut(pid) {
        t.pgid = pgid;
    }
    Ok(0)
}

pub fn setsid(c: &mut Call) -> SysResult {
    let me = c.task.tgid();
    let mut tasks = c.task.kernel.tasks();
    if tasks.procs.values().any(|p| p.pgid == me) {
        return Err(Errno::EPERM);
    }
    let p = tasks.proc_mut(me).ok_or(Errno::ESRCH)?;
    p.pgid = me;
    p.sid = me;
    let ns = c.task.pidns();
    Ok(tasks.pid_or_zero(&ns, me) as u64)
}

// ---- credentials ----------------------------------------------------------------------------

pub fn getuid(c: &mut Call) -> SysResult {
    Ok(u64::from(c.task.creds().uid))
}
pub fn geteuid(c: &mut Call) -> SysResult {
    Ok(u64::from(c.task.creds().euid))
}
pub fn getgid(c: &mut Call) -> SysResult {
    Ok(u64::from(c.task.creds().gid))
}
pub fn getegid(c: &mut Call) -> SysResult {
    Ok(u64::from(c.task.creds().egid))
}

pub fn getresuid(c: &mut Call) -> SysResult {
    let cr = c.task.creds();
    for (i, v) in [cr.uid, cr.euid, cr.suid].iter().enumerate() {
        c.write_bytes(c.args[i], &v.to_le_bytes())?;
    }
    Ok(0)
}

pub fn getresgid(c: &mut Call) -> SysResult {
    let cr = c.task.creds();
    for (i, v) in [cr.gid, cr.egid, cr.sgid].iter().enumerate() {
        c.write_bytes(c.args[i], &v.to_le_bytes())?;
    }
    Ok(0)
}

/// setres[ug]id semantics; -1 leaves a value unchanged.
fn set_ids(c: &mut Call, r: u32, e: u32, s: u32, user: bool) -> SysResult {
    let old = c.task.creds();
    let mut cr = (*old).clone();
    let (cur, root) = if user {
        ([cr.uid, cr.euid, cr.suid], cr.has_cap(Capability::SETUID))
    } else {
        ([cr.gid, cr.egid, cr.sgid], cr.has_cap(Capability::SETGID))
    };
    for v in [r, e, s] {
        if v != u32::MAX && !root && !cur.contains(&v) {
            return Err(Errno::EPERM);
        }
    }
    let pick = |new: u32, old: u32| if new == u32::MAX { old } else { new };
    if user {
        cr.uid = pick(r, cr.uid);
        cr.euid = pick(e, cr.euid);
        cr.suid = pick(s, cr.suid);
        cr.fsuid = cr.euid;
        cr.fix_setuid(&old);
    } else {
        cr.gid = pick(r, cr.gid);
        cr.egid = pick(e, cr.egid);
        cr.sgid = pick(s, cr.sgid);
        cr.fsgid = cr.egid;
    }
    c.task.set_creds(cr);
    Ok(0)
}

pub fn setresuid(c: &mut Call) -> SysResult {
    set_ids(c, c.arg_u32(0), c.arg_u32(1), c.arg_u32(2), true)
}
pub fn setresgid(c: &mut Call) -> SysResult {
    set_ids(c, c.arg_u32(0), c.arg_u32(1), c.arg_u32(2), false)
}
pub fn setreuid(c: &mut Call) -> SysResult {
    set_ids(c, c.arg_u32(0), c.arg_u32(1), u32::MAX, true)
}
pub fn setregid(c: &mut Call) -> SysResult {
    set_ids(c, c.arg_u32(0), c.arg_u32(1), u32::MAX, false)
}
pub fn setuid(c: &mut Call) -> SysResult {
    let id = c.arg_u32(0);
    if c.task.creds().has_cap(Capability::SETUID) {
        set_ids(c, id, id, id, true)
    } else {
        set_ids(c, u32::MAX, id, u32::MAX, true)
    }
}
pub fn setgid(c: &mut Call) -> SysResult {
    let id = c.arg_u32(0);
    if c.task.creds().has_cap(Capability::SETGID) {
        set_ids(c, id, id, id, false)
    } else {
        set_ids(c, u32::MAX, id, u32::MAX, false)
    }
}
pub fn setfsuid(c: &mut Call) -> SysResult {
    Ok(u64::from(c.task.creds().fsuid))
}
pub fn setfsgid(c: &mut Call) -> SysResult {
    Ok(u64::from(c.task.creds().fsgid))
}

pub fn getgroups(c: &mut Call) -> SysResult {
    let g = c.task.creds().groups.clone();
    let n = c.arg_i32(0);
    if n < 0 {
        return Err(Errno::EINVAL);
    }
    if n == 0 {
        return Ok(g.len() as u64);
    }
    if (n as usize) < g.len() {
        return Err(Errno::EINVAL);
    }
    let b: Vec<u8> = g.iter().flat_map(|x| x.to_le_bytes()).collect();
    c.write_bytes(c.args[1], &b)?;
    Ok(g.len() as u64)
}

pub fn setgroups(c: &mut Call) -> SysResult {
    let n = c.args[0] as usize;
    if n > 65536 {
        return Err(Errno::EINVAL);
    }
    if !c.task.creds().has_cap(Capability::SETGID) {
        return Err(Errno::EPERM);
    }
    let b = c.read_bytes(c.args[1], n * 4)?;
    let mut cr = (*c.task.creds()).clone();
    cr.groups = b.chunks_exact(4).map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]])).collect();
    c.task.set_creds(cr);
    Ok(0)
}

// ---- limits, names, misc --------------------------------------------------------------------

fn rlimit_bytes(v: (u64, u64)) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&v.0.to_le_bytes());
    b[8..].copy_from_slice(&v.1.to_le_bytes());
    b
}

const RLIMIT_NOFILE: usize = 7;

pub fn prlimit64(c: &mut Call) -> SysResult {
    let pid = c.arg_i32(0);
    let tg = if pid == 0 {
        c.task.tg()
    } else {
        c.task.kernel.tasks().proc_in(&c.task.pidns(), pid).map(|p| p.tg.clone())?
    };
    let res = c.args[1] as usize;
    if res >= 16 {
        return Err(Errno::EINVAL);
    }
    let old = tg.rlimit(res);
    if c.args[2] != 0 {
        let b = c.read_bytes(c.args[2], 16)?;
        let soft = u64::from_le_bytes(b[..8].try_into().map_err(|_| Errno::EFAULT)?);
        let hard = u64::from_le_bytes(b[8..].try_into().map_err(|_| Errno::EFAULT)?);
        if soft > hard {
            return Err(Errno::EINVAL);
        }
        if hard > old.1 && !c.task.creds().has_cap(Capability::SYS_RESOURCE) {
            return Err(Errno::EPERM);
        }
        if res == RLIMIT_NOFILE && hard > crate::vfs::fd_table::MAX_NOFILE {
            return Err(Errno::EPERM);
        }
        tg.lock().rlimits[res] = (soft, hard);
    }
    if c.args[3] != 0 {
        c.write_bytes(c.args[3], &rlimit_bytes(old))?;
    }
    Ok(0)
}

pub fn getrlimit(c: &mut Call) -> SysResult {
    c.args = [0, c.args[0], 0, c.args[1], 0, 0];
    prlimit64(c)
}

pub fn setrlimit(c: &mut Call) -> SysResult {
    c.args = [0, c.args[0], c.args[1], 0, 0, 0];
    prlimit64(c)
}

pub fn getrusage(c: &mut Call) -> SysResult {
    const RUSAGE_SELF: i32 = 0;
    const RUSAGE_CHILDREN: i32 = -1;
    const RUSAGE_THREAD: i32 = 1;
    let tg = c.task.tg();
    let u = match c.arg_i32(0) {
        RUSAGE_SELF => {
            let mut u = tg.lock().usage;
            u.user_us += tg.threads().iter().map(|t| t.cpu_us()).sum::<u64>();
            u.maxrss_kb = c.mm().resident_pages() * 4;
            u
        }
        RUSAGE_CHILDREN => tg.lock().children_usage,
        RUSAGE_THREAD => {
            crate::kernel::thread_group::Usage { user_us: c.task.cpu_us(), ..Default::default() }
        }
        _ => return Err(Errno::EINVAL),
    };
    c.write_bytes(c.args[1], &rusage_bytes(&u))?;
    Ok(0)
}

pub fn times(c: &mut Call) -> SysResult {
    let tg = c.task.tg();
    let (own, children) = {
        let st = tg.lock();
        (st.usage.user_us + st.usage.sys_us, st.children_usage.user_us + st.children_usage.sys_us)
    };
    let own = own + tg.threads().iter().map(|t| t.cpu_us()).sum::<u64>();
    let ticks = |us: u64| us / 10_000;
    if c.args[0] != 0 {
        let mut b = [0u8; 32];
        b[0..8].copy_from_slice(&ticks(own).to_le_bytes());
        b[16..24].copy_from_slice(&ticks(children).to_le_bytes());
        c.write_bytes(c.args[0], &b)?;
    }
    Ok(c.task.kernel.boot.elapsed().as_millis() as u64 / 10)
}

const PR_SET_PDEATHSIG: u32 = 1;
const PR_GET_PDEATHSIG: u32 = 2;
const PR_GET_DUMPABLE: u32 = 3;
const PR_SET_DUMPABLE: u32 = 4;
const PR_SET_NAME: u32 = 15;
const PR_GET_NAME: u32 = 16;
const PR_SET_CHILD_SUBREAPER: u32 = 36;
const PR_GET_CHILD_SUBREAPER: u32 = 37;
const PR_SET_VMA: u32 = 0x5356_4d41;

pub fn prctl(c: &mut Call) -> SysResult {
    if super::sys_security::is_prctl_option(c.arg_u32(0)) {
        return super::sys_security::prctl(c);
    }
    match c.arg_u32(0) {
        PR_SET_NAME => {
            let mut name = c
                .mm()
                .read_cstring(c.args[1], 4096)
                .or_else(|e| if e == Errno::ENAMETOOLONG { Ok(Vec::new()) } else { Err(e) })?;
            name.truncate(15);
            *c.task.comm.lock().unwrap_or_else(|e| e.into_inner()) = name;
            Ok(0)
        }
        PR_GET_NAME => {
            let mut b = c.task.comm();
            b.resize(16, 0);
            c.write_bytes(c.args[1], &b)?;
            Ok(0)
        }
        PR_SET_PDEATHSIG | PR_SET_DUMPABLE | PR_SET_CHILD_SUBREAPER | PR_SET_VMA => Ok(0),
        PR_GET_PDEATHSIG => {
            c.write_bytes(c.args[1], &0i32.to_le_bytes())?;
            Ok(0)
        }
        PR_GET_DUMPABLE => Ok(1),
        PR_GET_CHILD_SUBREAPER => Ok(0),
        _ => Err(Errno::EINVAL),
    }
}

pub fn sched_yield(_c: &mut Call) -> SysResult {
    std::thread::yield_now();
    Ok(0)
}

/// The CPU number means what the vDSO's RDTSCP reports on this platform (see platform/kvm/tsc.rs),
/// so that both paths agree; one NUMA node.
pub fn getcpu(c: &mut Call) -> SysResult {
    use crate::platform::kvm::tsc::{CpuNumber, host_cpu};
    let ncpus = c.task.kernel.info().cpus.max(1);
    let cpu = match c.task.kernel.vdso.as_ref().map(|v| v.cpu_number()) {
        Some(CpuNumber::HostCpu) => host_cpu().map_or(0, |cpu| cpu % ncpus),
        Some(CpuNumber::VcpuIndex) => (c.cpu.index() % u64::from(ncpus)) as u32,
        _ => 0,
    };
    for (i, v) in [cpu, 0].into_iter().enumerate() {
        if c.args[i] != 0 {
            c.write_bytes(c.args[i], &v.to_le_bytes())?;
        }
    }
    Ok(0)
}

pub fn sched_getscheduler(_c: &mut Call) -> SysResult {
    Ok(0)
}

pub fn sched_getparam(c: &mut Call) -> SysResult {
    c.write_bytes(c.args[1], &0i32.to_le_bytes())?;
    Ok(0)
}

pub fn sched_get_priority(_c: &mut Call) -> SysResult {
    Ok(0)
}

pub fn personality(c: &mut Call) -> SysResult {
    if c.args[0] == 0xffff_ffff || c.args[0] == 0 {
        return Ok(0);
    }
    Err(Errno::EINVAL)
}

pub fn umask(c: &mut Call) -> SysResult {
    let fs = c.task.fs();
    let mut st = fs.lock();
    let old = st.umask;
    st.umask = c.arg_u32(0) & 0o777;
    Ok(u64::from(old))
}
