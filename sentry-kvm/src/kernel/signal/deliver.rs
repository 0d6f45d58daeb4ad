//! Delivery at the return to user mode: default actions, job-control stops, handler frames,
//! and the restart of interrupted syscalls.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::abi::Errno;
use crate::abi::signal::*;
use crate::kernel::signal::frame::{self, FrameSetup, XSAVE_BYTES};
use crate::kernel::signal::send::{self, force, group_exit};
use crate::kernel::task::Task;
use crate::kernel::thread_group::{ExitStatus, JobEvent};
use crate::platform::Cpu;
use crate::platform::UserContext;

/// A syscall that was interrupted and may be restarted.
#[derive(Clone, Copy, Debug)]
pub struct Interrupted {
    pub errno: Errno,
    pub nr: u64,
}

/// Fault details for the frame of a synchronous signal.
#[derive(Clone, Copy, Debug, Default)]
pub struct Trap {
    pub trapno: u64,
    pub err: u64,
    pub cr2: u64,
}

pub enum Next {
    Resume,
    Exit,
}

fn restart(ctx: &mut UserContext, nr: u64) {
    ctx.regs.rax = nr;
    ctx.regs.rip -= 2;
}

/// Applies what an interrupted syscall does when no handler runs (restart it).
fn restart_without_handler(ctx: &mut UserContext, intr: &mut Option<Interrupted>) {
    if let Some(i) = intr.take()
        && i.errno.is_restart()
    {
        restart(ctx, i.nr);
    }
}

/// Delivers every deliverable signal; returns whether the task keeps running.
pub fn deliver_pending(
    task: &Arc<Task>,
    ctx: &mut UserContext,
    cpu: &mut dyn Cpu,
    mut intr: Option<Interrupted>,
    trap: Trap,
) -> Next {
    let tg = task.tg();
    loop {
        if task.exiting.load(Ordering::SeqCst) || tg.lock().group_exit.is_some() {
            return Next::Exit;
        }
        if tg.lock().stopped {
            // Job-control stop: wait for SIGCONT (or death).
            let reg = tg.continued.register(&task.waker, crate::waiter::Events::ALL);
            task.waker.set_interrupt(false);
            while tg.lock().stopped && !task.exiting.load(Ordering::SeqCst) {
                let _ = task
                    .waker
                    .block(Some(std::time::Instant::now() + std::time::Duration::from_millis(200)));
            }
            drop(reg);
            continue;
        }
        let info = {
            let mut s = task.sig();
            let mask = s.mask;
            match s.pending.pop(mask) {
                Some(i) => Some(i),
                None => {
                    drop(s);
                    tg.lock().shared_pending.pop(mask)
                }
            }
        };
        let Some(mut info) = info else { break };
        tg.timers.delivering(&mut info);
        let sig = info.signo;
        let handlers = tg.handlers();
        let action = {
            let mut h = handlers.lock().unwrap_or_else(|e| e.into_inner());
            let a = h.get(sig);
            if a.handler > SIG_IGN && a.flags & SA_RESETHAND != 0 {
                h.set(sig, SigAction::default());
            }
            a
        };
        if action.handler == SIG_IGN {
            continue;
        }
        if action.handler == SIG_DFL {
            match default_action(sig) {
                DefaultAction::Ignore | DefaultAction::Continue => continue,
                DefaultAction::Stop => {
                    {
                        let mut st = tg.lock();
                        st.stopped = true;
                        st.job_event = Some(JobEvent::Stopped(sig));
                    }
                    for t in tg.threads() {
                        t.interrupt();
                    }
                    send::notify_parent_job(&tg, CLD_STOPPED, sig);
                    continue;
                }
                DefaultAction::Terminate => {
                    group_exit(&tg, ExitStatus::Signaled { sig, core: false });
                    return Next::Exit;
                }
                DefaultAction::CoreDump => {
                    group_exit(&tg, ExitStatus::Signaled { sig, core: true });
                    return Next::Exit;
                }
            }
        }
        // A handler: fix up the interrupted syscall first so the frame records the restart.
        if let Some(i) = intr.take() {
            match i.errno {
                Errno::ERESTARTSYS if action.flags & SA_RESTART != 0 => restart(ctx, i.nr),
                Errno::ERESTARTNOINTR => restart(ctx, i.nr),
                Errno::ERESTARTSYS | Errno::ERESTARTNOHAND | Errno::ERESTART_RESTARTBLOCK => {
                    ctx.regs.rax = (-(Errno::EINTR.0 as i64)) as u64;
                    *task.restart_deadline.lock().unwrap_or_else(|e| e.into_inner()) = None;
                }
                _ => {}
            }
        }
        if let Err(e) = setup_frame(task, ctx, cpu, &info, &action, trap) {
            tracing::debug!(sig, "signal frame could not be written: {e}");
            force(task, SigInfo::kernel(SIGSEGV));
            if sig == SIGSEGV {
                group_exit(&tg, ExitStatus::Signaled { sig: SIGSEGV, core: true });
                return Next::Exit;
            }
        }
    }
    restart_without_handler(ctx, &mut intr);
    // A temporary mask (sigsuspend, ppoll) ends once no handler was run for it.
    {
        let mut s = task.sig();
        if let Some(m) = s.saved_mask.take() {
            s.mask = m;
        }
    }
    task.recalc_interrupt();
    Next::Resume
}

fn setup_frame(
    task: &Arc<Task>,
    ctx: &mut UserContext,
    cpu: &mut dyn Cpu,
    info: &SigInfo,
    action: &SigAction,
    trap: Trap,
) -> Result<(), Errno> {
    let (altstack, old_mask) = {
        let mut s = task.sig();
        let old = s.saved_mask.take().unwrap_or(s.mask);
        (s.altstack, old)
    };
    let on_altstack = action.flags & SA_ONSTACK != 0
        && altstack.size != 0
        && altstack.flags & SS_DISABLE == 0
        && !altstack.contains(ctx.regs.rsp);
    let xsave = cpu.get_fpu().map_err(|_| Errno::EFAULT)?;
    // SAFETY: kvm_xsave is a plain array of u32 (4096 bytes); viewing it as bytes is sound.
    let fpu =
        unsafe { std::slice::from_raw_parts(xsave.region.as_ptr().cast::<u8>(), XSAVE_BYTES) };
    let setup = FrameSetup {
        regs: &ctx.regs,
        info,
        handler: action.handler,
        restorer: if action.flags & SA_RESTORER != 0 { action.restorer } else { 0 },
        on_altstack,
        altstack,
        saved_mask: old_mask,
        fpu,
        trapno: trap.trapno,
        err: trap.err,
        cr2: trap.cr2,
    };
    let regs = frame::build(&task.mm(), &setup)?;
    ctx.regs = regs;
    // The handler runs with a fresh FPU state, as on Linux.
    cpu.set_fpu(&task.kernel.clean_fpu).map_err(|_| Errno::EFAULT)?;
    let mut s = task.sig();
    let mut mask = SigSet(old_mask.0 | action.mask.0);
    if action.flags & SA_NODEFER == 0 {
        mask.add(info.signo);
    }
    s.mask = mask.blockable();
    Ok(())
}
