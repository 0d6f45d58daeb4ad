//! fork, vfork and clone: new processes and threads.

use crate::sync::Mutex;
use std::sync::Arc;

use crate::abi::Errno;
use crate::abi::signal::{NSIG, valid};
use crate::creds::caps::Capability;
use crate::kernel::pid::ProcInfo;
use crate::kernel::run;
use crate::kernel::task::{Completion, Task};
use crate::kernel::thread_group::ThreadGroup;
use crate::platform::Cpu;
use crate::platform::UserContext;
use crate::waiter::Events;

pub const CLONE_VM: u64 = 0x100;
pub const CLONE_FS: u64 = 0x200;
pub const CLONE_FILES: u64 = 0x400;
pub const CLONE_SIGHAND: u64 = 0x800;
pub const CLONE_PIDFD: u64 = 0x1000;
pub const CLONE_PTRACE: u64 = 0x2000;
pub const CLONE_VFORK: u64 = 0x4000;
pub const CLONE_PARENT: u64 = 0x8000;
pub const CLONE_THREAD: u64 = 0x10000;
pub const CLONE_NEWNS: u64 = 0x20000;
pub const CLONE_SYSVSEM: u64 = 0x40000;
pub const CLONE_SETTLS: u64 = 0x80000;
pub const CLONE_PARENT_SETTID: u64 = 0x100000;
pub const CLONE_CHILD_CLEARTID: u64 = 0x200000;
pub const CLONE_DETACHED: u64 = 0x400000;
pub const CLONE_UNTRACED: u64 = 0x800000;
pub const CLONE_CHILD_SETTID: u64 = 0x0100_0000;
pub const CLONE_NEWCGROUP: u64 = 0x0200_0000;
pub const CLONE_NEWUTS: u64 = 0x0400_0000;
pub const CLONE_NEWIPC: u64 = 0x0800_0000;
pub const CLONE_NEWUSER: u64 = 0x1000_0000;
pub const CLONE_NEWPID: u64 = 0x2000_0000;
pub const CLONE_NEWNET: u64 = 0x4000_0000;
pub const CLONE_IO: u64 = 0x8000_0000;

/// Every namespace flag.
pub const NAMESPACES: u64 = CLONE_NEWUSER
    | CLONE_NEWPID
    | CLONE_NEWNET
    | CLONE_NEWNS
    | CLONE_NEWUTS
    | CLONE_NEWIPC
    | CLONE_NEWCGROUP;

const SUPPORTED: u64 = 0xff
    | CLONE_VM
    | CLONE_FS
    | CLONE_FILES
    | CLONE_SIGHAND
    | CLONE_VFORK
    | CLONE_PARENT
    | CLONE_THREAD
    | CLONE_SYSVSEM
    | CLONE_SETTLS
    | CLONE_PARENT_SETTID
    | CLONE_CHILD_CLEARTID
    | CLONE_DETACHED
    | CLONE_UNTRACED
    | CLONE_CHILD_SETTID
    | CLONE_NEWPID
    | CLONE_IO;

pub struct CloneArgs {
    pub flags: u64,
    pub stack: u64,
    pub parent_tid: u64,
    pub child_tid: u64,
    pub tls: u64,
}

/// Creates the child and starts it; returns its tid as the caller's namespace names it.
pub fn clone(
    task: &Arc<Task>,
    ctx: &UserContext,
    cpu: &mut dyn Cpu,
    args: CloneArgs,
) -> Result<i32, Errno> {
    let f = args.flags;
    if f & !SUPPORTED != 0 {
        // Namespaces other than PID ones, and ptrace, are not offered inside a sandbox.
        return Err(if f & NAMESPACES != 0 { Errno::EPERM } else { Errno::EINVAL });
    }
    if (f & CLONE_THREAD != 0 && f & CLONE_SIGHAND == 0)
        || (f & CLONE_SIGHAND != 0 && f & CLONE_VM == 0)
    {
        return Err(Errno::EINVAL);
    }
    if f & CLONE_NEWPID != 0 && f & CLONE_THREAD != 0 {
        return Err(Errno::EINVAL);
    }
    let exit_signal = (f & 0xff) as u32;
    if exit_signal != 0 && (!valid(exit_signal) || exit_signal > NSIG) {
        return Err(Errno::EINVAL);
    }
    let kernel = task.kernel.clone();
    let parent_tg = task.tg();
    let ns = if f & CLONE_THREAD != 0 {
        // A thread joins its process's namespace; after unshare(CLONE_NEWPID) that no longer
        // matches the one children go to.
        if !Arc::ptr_eq(&task.children_pidns(), &parent_tg.pidns) {
            return Err(Errno::EINVAL);
        }
        parent_tg.pidns.clone()
    } else if f & CLONE_NEWPID != 0 {
        if !task.creds().has_cap(Capability::SYS_ADMIN) {
            return Err(Errno::EPERM);
        }
        // Not after unshare(CLONE_NEWPID): the new one would nest in a namespace the caller
        // is not in.
        if !Arc::ptr_eq(&task.children_pidns(), &parent_tg.pidns) {
            return Err(Errno::EINVAL);
        }
        parent_tg.pidns.new_child()?
    } else {
        task.children_pidns()
    };

    let mm = if f & CLONE_VM != 0 { task.mm() } else { Arc::new(task.mm().fork()?) };
    let files = if f & CLONE_FILES != 0 { task.files() } else { task.files().fork() };
    let fs = if f & CLONE_FS != 0 { task.fs() } else { task.fs().fork() };
    let fpu = cpu.get_fpu().map_err(|_| Errno::EAGAIN)?;

    let mut tasks = kernel.tasks();
    let tid = tasks.alloc_id(&ns)?;
    // What the caller's namespace calls the child (clone's result, CLONE_PARENT_SETTID), and
    // what the child's own calls it (CLONE_CHILD_SETTID).
    let (tid_parent, tid_child) =
        (tasks.pid_or_zero(&parent_tg.pidns, tid), tasks.pid_or_zero(&ns, tid));
    let tg = if f & CLONE_THREAD != 0 {
        parent_tg.clone()
    } else {
        let handlers = if f & CLONE_SIGHAND != 0 {
            parent_tg.handlers()
        } else {
            Arc::new(Mutex::new(
                parent_tg.handlers().lock().unwrap_or_else(|e| e.into_inner()).clone(),
            ))
        };
        let rlimits = parent_tg.lock().rlimits;
        let tg = ThreadGroup::new(tid, handlers, rlimits, ns.clone());
        if tasks.init_of(&ns) == Some(tid) {
            tg.set_ns_init();
        }
        {
            let mut st = tg.lock();
            st.exit_signal = exit_signal;
            let p = parent_tg.lock();
            st.exe = p.exe.clone();
            st.exe_location = p.exe_location.clone();
        }
        let me = tasks.proc(parent_tg.tgid).ok_or(Errno::ESRCH)?;
        let (pgid, sid) = (me.pgid, me.sid);
        let parent =
            if f & CLONE_PARENT != 0 && me.parent != 0 { me.parent } else { parent_tg.tgid };
        tasks.procs.insert(
            tid,
            ProcInfo { tg: tg.clone(), parent, children: Default::default(), pgid, sid },
        );
        if let Some(p) = tasks.proc_mut(parent) {
            p.children.insert(tid);
        }
        tg
    };
    let mask = task.sig().mask;
    let child = Task::new(
        tid,
        kernel.clone(),
        tg.clone(),
        mm.clone(),
        fs,
        files,
        task.creds(),
        mask,
        task.comm(),
    );
    child.inherit_sched(task);
    child.inherit_security(task);
    tasks.threads.insert(tid, child.clone());
    tg.lock().threads.push(child.clone());
    drop(tasks);

    if f & CLONE_CHILD_CLEARTID != 0 {
        child.clear_child_tid.store(args.child_tid, std::sync::atomic::Ordering::Relaxed);
    }
    if f & CLONE_PARENT_SETTID != 0 {
        let _ = task.mm().copy_out(args.parent_tid, &tid_parent.to_le_bytes());
    }
    if f & CLONE_CHILD_SETTID != 0 {
        let _ = mm.copy_out(args.child_tid, &tid_child.to_le_bytes());
    }

    let mut cctx = *ctx;
    cctx.regs.rax = 0;
    if args.stack != 0 {
        cctx.regs.rsp = args.stack;
    }
    if f & CLONE_SETTLS != 0 {
        cctx.fs_base = args.tls;
    }
    cctx.cr3 = mm.root().0;

    let vfork = (f & CLONE_VFORK != 0).then(|| {
        let c = Arc::new(Completion::default());
        *child.vfork_done.lock().unwrap_or_else(|e| e.into_inner()) = Some(c.clone());
        c
    });
    if let Err(e) = run::spawn(child.clone(), cctx, Some(fpu)) {
        tracing::error!("cannot start a thread for task {tid}: {e}");
        crate::kernel::exit::exit_task(&child, 0);
        return Err(Errno::EAGAIN);
    }
    if let Some(c) = vfork {
        // The parent sleeps until the child execs or exits; signals are held until then.
        let _reg = c.queue.register(&task.waker, Events::ALL);
        while !c.is_done() && !task.exiting.load(std::sync::atomic::Ordering::SeqCst) {
            let deadline = std::time::Instant::now() + std::time::Duration::from_millis(100);
            if task.waker.block(Some(deadline)) == crate::waiter::Woken::Interrupted {
                // A pending signal waits for the child; don't spin on it.
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    }
    Ok(tid_parent)
}
