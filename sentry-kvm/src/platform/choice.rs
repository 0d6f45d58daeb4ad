//! Which platform suits this host: the one whose syscall round trip is shorter, measured on a
//! tiny program (a KVM exit costs ~1 µs with hardware virtualisation and 30-60 µs on nested
//! hosts that emulate it; a seccomp trap to a stub and back costs a few µs anywhere).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::kvm::{Machine, layout};
use super::systrap::Systrap;
use super::{Exit, Platform, PlatformError, PlatformKind, UserContext};
use crate::mm::page_table::{PageTables, Pte};
use crate::mm::{PAGE_SIZE, VirtAddr};

/// Memory of the throw-away sandboxes the measurement runs in.
const PROBE_MEMORY: u64 = 64 << 20;

/// The mean round trip of `n` getpid syscalls of `loop: mov eax, 39; syscall; jmp loop` on a
/// CPU of `platform` (after one untimed, which starts what a platform starts lazily).
pub fn syscall_round_trip(platform: &dyn Platform, n: u32) -> Result<Duration, PlatformError> {
    const CODE: u64 = 0x40_0000;
    let code = [0xb8, 39, 0, 0, 0, 0x0f, 0x05, 0xeb, 0xf7];
    let phys = platform.phys();
    let oom = |_| PlatformError::Config("guest memory exhausted".into());
    let pt = PageTables::new(phys, layout::KERNEL_PDPT).map_err(oom)?;
    let f = phys.alloc_frame().map_err(oom)?;
    phys.mem.write(f, &code);
    pt.map(phys, VirtAddr(CODE), Pte::user(f, false, true)).map_err(oom)?;
    let mut ctx = UserContext { cr3: pt.root().0, ..Default::default() };
    ctx.regs.rip = CODE;
    ctx.regs.rsp = CODE + PAGE_SIZE;
    ctx.regs.rflags = 0x202;
    let mut cpu = platform.acquire()?;
    cpu.bind_current_thread();
    let mut start = Instant::now();
    for i in 0..=n {
        if i == 1 {
            start = Instant::now();
        }
        match cpu.run(&mut ctx)? {
            Exit::Syscall if ctx.regs.rax == 39 => ctx.regs.rax = 1,
            other => {
                return Err(PlatformError::UnexpectedExit(format!(
                    "{other:?} with rax {:#x}",
                    ctx.regs.rax
                )));
            }
        }
    }
    let mean = start.elapsed() / n.max(1);
    platform.release(cpu);
    Ok(mean)
}

/// Both platforms' round trips here (an error where one cannot run), and the choice.
pub struct Choice {
    pub kvm: Result<Duration, PlatformError>,
    pub systrap: Result<Duration, PlatformError>,
    pub chosen: PlatformKind,
}

/// Measures both platforms with `n` round trips each and picks the faster that works (KVM
/// when neither does, so that its error is the one reported).
pub fn choose(n: u32) -> Choice {
    let kvm = Machine::new(PROBE_MEMORY).and_then(|m| syscall_round_trip(m.as_ref(), n));
    let systrap =
        Systrap::new(PROBE_MEMORY).and_then(|s: Arc<Systrap>| syscall_round_trip(s.as_ref(), n));
    let chosen = match (&kvm, &systrap) {
        (Ok(k), Ok(s)) if s < k => PlatformKind::Systrap,
        (Err(_), Ok(_)) => PlatformKind::Systrap,
        _ => PlatformKind::Kvm,
    };
    tracing::debug!(?kvm, ?systrap, ?chosen, "platform round trips");
    Choice { kvm, systrap, chosen }
}
