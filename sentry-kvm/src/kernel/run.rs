//! The life of a task on its host thread: run application code, handle what stops it.

use std::sync::Arc;

use crate::abi::Errno;
use crate::abi::signal::*;
use crate::kernel::exit::exit_task;
use crate::kernel::signal::deliver::{Interrupted, Next, Trap, deliver_pending};
use crate::kernel::signal::send::{force, group_exit};
use crate::kernel::task::{Task, set_current};
use crate::kernel::thread_group::ExitStatus;
use crate::mm::address_space::{Access, FaultError};
use crate::platform::{Cpu, Exit, UserContext};
use crate::syscalls::{self, Outcome};

/// Starts `task` on a new host thread.
pub fn spawn(
    task: Arc<Task>,
    ctx: UserContext,
    fpu: Option<kvm_bindings::kvm_xsave>,
) -> std::io::Result<()> {
    let name = format!("task-{}", task.tid());
    std::thread::Builder::new()
        .name(name)
        .stack_size(1 << 20)
        .spawn(move || run_task(task, ctx, fpu))?;
    Ok(())
}

fn run_task(task: Arc<Task>, mut ctx: UserContext, fpu: Option<kvm_bindings::kvm_xsave>) {
    set_current(Some(task.clone()));
    // SAFETY: gettid has no preconditions.
    let host_tid = unsafe { libc::syscall(libc::SYS_gettid) } as i32;
    task.host_tid.store(host_tid, std::sync::atomic::Ordering::Relaxed);
    let kernel = task.kernel.clone();
    let code = match kernel.platform.acquire() {
        Ok(mut cpu) => {
            if !cpu.tsc_aligned()
                && let Some(v) = &kernel.vdso
            {
                v.disable_clock();
            }
            *task.kicker.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(cpu.bind_current_thread());
            let state = fpu.unwrap_or_else(|| crate::platform::copy_fpu(&kernel.clean_fpu));
            let code = match cpu.set_fpu(&state) {
                Ok(()) => run_loop(&task, &mut ctx, cpu.as_mut()),
                Err(e) => {
                    tracing::error!("loading FPU state for task {}: {e}", task.tid());
                    group_exit(&task.tg(), ExitStatus::Signaled { sig: SIGKILL, core: false });
                    0
                }
            };
            *task.kicker.lock().unwrap_or_else(|e| e.into_inner()) = None;
            kernel.platform.release(cpu);
            code
        }
        Err(e) => {
            tracing::error!("no vCPU for task {}: {e}", task.tid());
            group_exit(&task.tg(), ExitStatus::Signaled { sig: SIGKILL, core: false });
            0
        }
    };
    exit_task(&task, code);
    set_current(None);
}

/// Runs until the task exits; returns its exit(2) code.
fn run_loop(task: &Arc<Task>, ctx: &mut UserContext, cpu: &mut dyn Cpu) -> i32 {
    let mut intr: Option<Interrupted> = None;
    let mut trap = Trap::default();
    loop {
        if task.kernel.freezer.active() {
            crate::kernel::freezer::park(task);
        }
        if (task.waker.interrupted() || intr.is_some())
            && let Next::Exit = deliver_pending(task, ctx, cpu, intr.take(), trap)
        {
            return 0;
        }
        trap = Trap::default();
        let exit = match cpu.run(ctx) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(tid = task.tid(), "the guest failed: {e}");
                group_exit(&task.tg(), ExitStatus::Signaled { sig: SIGKILL, core: false });
                return 0;
            }
        };
        match exit {
            Exit::Syscall => {
                let nr = ctx.regs.rax;
                task.activity.enter(nr, task.kernel.boot);
                let outcome = syscalls::dispatch(task, ctx, cpu);
                task.activity.leave();
                match outcome {
                    Outcome::Return(v) => ctx.regs.rax = v,
                    Outcome::Error(e) => {
                        ctx.regs.rax = (-(i64::from(e.0))) as u64;
                        if e.is_restart() {
                            intr = Some(Interrupted { errno: e, nr });
                            // If no signal turns out to be pending, the syscall restarts.
                            ctx.regs.rax = (-(i64::from(Errno::EINTR.0))) as u64;
                        }
                    }
                    Outcome::Registers => {}
                    Outcome::Exit(code) => return code,
                }
            }
            Exit::Fault { vector, error_code, addr } => {
                trap = Trap { trapno: u64::from(vector), err: error_code, cr2: addr };
                handle_fault(task, vector, error_code, addr, ctx);
            }
            Exit::Interrupted => {}
        }
    }
}

fn handle_fault(task: &Arc<Task>, vector: u8, error_code: u64, addr: u64, ctx: &UserContext) {
    let info = match vector {
        14 => {
            let access = if error_code & 0x10 != 0 {
                Access::Exec
            } else if error_code & 2 != 0 {
                Access::Write
            } else {
                Access::Read
            };
            match task.mm().handle_fault(addr, access) {
                Ok(()) => return,
                Err(FaultError::Unmapped) => SigInfo::fault(SIGSEGV, SEGV_MAPERR, addr),
                Err(FaultError::Protection) => SigInfo::fault(SIGSEGV, SEGV_ACCERR, addr),
                Err(FaultError::Bus) => SigInfo::fault(SIGBUS, BUS_ADRERR, addr),
                Err(FaultError::OutOfMemory) => {
                    tracing::warn!(tid = task.tid(), "sandbox out of memory: killing the process");
                    task.tg().mark_oom_killed();
                    group_exit(&task.tg(), ExitStatus::Signaled { sig: SIGKILL, core: false });
                    return;
                }
            }
        }
        0 => SigInfo::fault(SIGFPE, FPE_INTDIV, ctx.regs.rip),
        16 | 19 => SigInfo::fault(SIGFPE, 0, ctx.regs.rip),
        6 => SigInfo::fault(SIGILL, ILL_ILLOPN, ctx.regs.rip),
        1 | 3 => SigInfo::kernel(SIGTRAP),
        12 | 17 => SigInfo::kernel(SIGBUS),
        _ => SigInfo::kernel(SIGSEGV),
    };
    force(task, info);
}
