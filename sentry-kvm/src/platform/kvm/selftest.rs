//! A host check: runs a few CPL3 instructions that make syscalls and reports the round trip.

use std::fmt;
use std::time::{Duration, Instant};

use super::tsc::{CpuNumber, TimeProbe};
use super::{Machine, layout};
use crate::mm::page_table::{PageTables, Pte};
use crate::mm::{PAGE_SIZE, VirtAddr};
use crate::platform::{Cpu, Exit, PlatformError, UserContext};

pub struct SelfTestReport {
    pub vcpus: u64,
    pub syscalls: u32,
    pub round_trip: Duration,
    /// What the vDSO can use on this host.
    pub time: TimeProbe,
}

impl fmt::Display for SelfTestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "KVM platform: ok (up to {} vCPUs per sandbox)", self.vcpus)?;
        writeln!(
            f,
            "syscall round trip: {:.1} µs (mean of {})",
            self.round_trip.as_secs_f64() * 1e6,
            self.syscalls
        )?;
        let t = &self.time;
        if t.tsc_usable {
            writeln!(f, "vDSO clocks: the host's TSC ({} kHz), read without a syscall", t.tsc_khz)?;
        } else {
            writeln!(f, "vDSO clocks: TSC not usable here, clock reads are syscalls")?;
        }
        write!(
            f,
            "vDSO getcpu: {}",
            match t.cpu_number {
                CpuNumber::VcpuIndex => "vCPU index (RDTSCP)",
                CpuNumber::HostCpu => "host CPU (RDTSCP shows the host's TSC_AUX)",
                CpuNumber::Unknown => "syscall",
            }
        )
    }
}

/// Runs `loop: mov eax, 39; syscall; jmp loop` for a number of iterations.
pub fn run() -> Result<SelfTestReport, PlatformError> {
    const CODE: u64 = 0x40_0000;
    let code = [0xb8, 39, 0, 0, 0, 0x0f, 0x05, 0xeb, 0xf7];
    let m = Machine::new(64 << 20)?;
    let phys = m.phys();
    let oom = |_| PlatformError::Config("guest memory exhausted".into());
    let pt = PageTables::new(phys, layout::KERNEL_PDPT).map_err(oom)?;
    let f = phys.alloc_frame().map_err(oom)?;
    phys.mem.write(f, &code);
    pt.map(phys, VirtAddr(CODE), Pte::user(f, false, true)).map_err(oom)?;
    let mut ctx = UserContext { cr3: pt.root().0, ..Default::default() };
    ctx.regs.rip = CODE;
    ctx.regs.rsp = CODE + PAGE_SIZE;
    ctx.regs.rflags = 0x202;
    let mut vcpu = m.acquire_vcpu()?;
    vcpu.bind_current_thread();
    let n = 1000;
    let start = Instant::now();
    for _ in 0..n {
        match vcpu.run(&mut ctx)? {
            Exit::Syscall if ctx.regs.rax == 39 => ctx.regs.rax = 1,
            other => {
                return Err(PlatformError::UnexpectedExit(format!(
                    "{other:?} with rax {:#x}",
                    ctx.regs.rax
                )));
            }
        }
    }
    let round_trip = start.elapsed() / n;
    let time = super::tsc::probe(phys, &mut vcpu)?;
    Ok(SelfTestReport { vcpus: m.max_vcpus(), syscalls: n, round_trip, time })
}
