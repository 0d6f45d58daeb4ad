//! What application code sees of the time-stamp counter, so that the vDSO may read time without
//! an exit: every vCPU's TSC must be the host's own (offset 0, no scaling), which the Sentry
//! sets and then checks, and the counter must tick at a constant rate. What RDTSCP's TSC_AUX
//! reports differs between platforms: on VT-x/AMD-V it is the value KVM is given per vCPU; on
//! pagetable-based nested KVM (kvm_pvm) application code runs on the host CPU directly and sees
//! the host's own value (Linux's `node << 12 | cpu`). A probe run at boot finds out which.

use kvm_bindings::{Msrs, kvm_device_attr};
use kvm_ioctls::VcpuFd;

use super::layout;
use super::vcpu::{Vcpu, msr};
use crate::mm::page_table::{PageTables, Pte};
use crate::mm::{PAGE_SIZE, Physical, VirtAddr};
use crate::platform::{Cpu, Exit, PlatformError, UserContext};

const MSR_IA32_TSC: u32 = 0x10;
pub const MSR_TSC_AUX: u32 = 0xc000_0103;
/// KVM_VCPU_TSC_CTRL / KVM_VCPU_TSC_OFFSET (vCPU device attributes, Linux 5.16+).
const KVM_VCPU_TSC_CTRL: u32 = 0;
const KVM_VCPU_TSC_OFFSET: u64 = 0;
/// TSC_AUX value the probe gives its vCPU: no host CPU number looks like it.
const AUX_SENTINEL: u64 = 0xfff;

vmm_sys_util::ioctl_iow_nr!(KVM_SET_DEVICE_ATTR, kvm_bindings::KVMIO, 0xe1, kvm_device_attr);
vmm_sys_util::ioctl_iow_nr!(KVM_HAS_DEVICE_ATTR, kvm_bindings::KVMIO, 0xe3, kvm_device_attr);

/// The host's time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no memory effects; every x86-64 CPU has it.
    unsafe {
        core::arch::x86_64::_mm_lfence();
        let t = core::arch::x86_64::_rdtsc();
        core::arch::x86_64::_mm_lfence();
        t
    }
}

/// Whether the host's TSC runs at a constant rate through power states (CPUID "invariant TSC"),
/// the condition for using it as a clock at all.
pub fn host_tsc_invariant() -> bool {
    let max = core::arch::x86_64::__cpuid(0x8000_0000).eax;
    max >= 0x8000_0007 && core::arch::x86_64::__cpuid(0x8000_0007).edx & (1 << 8) != 0
}

/// The host CPU the calling thread runs on (libc answers without a syscall, which the Sentry's
/// seccomp filter would refuse).
pub fn host_cpu() -> Option<u32> {
    // SAFETY: sched_getcpu has no preconditions.
    u32::try_from(unsafe { libc::sched_getcpu() }).ok()
}

/// Makes the vCPU's TSC the host's; returns whether KVM then reports the host's counter for it.
pub(super) fn align(fd: &VcpuFd) -> bool {
    let mut offset: u64 = 0;
    let attr = kvm_device_attr {
        group: KVM_VCPU_TSC_CTRL,
        attr: KVM_VCPU_TSC_OFFSET,
        addr: &mut offset as *mut u64 as u64,
        flags: 0,
    };
    // SAFETY: KVM_HAS_DEVICE_ATTR / KVM_SET_DEVICE_ATTR on a vCPU fd read a kvm_device_attr
    // we own; for the TSC offset, `addr` points at a u64 that outlives the calls.
    let set = unsafe {
        vmm_sys_util::ioctl::ioctl_with_ref(fd, KVM_HAS_DEVICE_ATTR(), &attr) == 0
            && vmm_sys_util::ioctl::ioctl_with_ref(fd, KVM_SET_DEVICE_ATTR(), &attr) == 0
    };
    if !set {
        tracing::debug!("KVM cannot set the TSC offset; checking the vCPU's counter as it is");
    }
    let Ok(mut m) = Msrs::from_entries(&[msr(MSR_IA32_TSC, 0)]) else { return false };
    // The guest's counter must fall between two host reads around KVM's.
    let before = rdtsc();
    let got = fd.get_msrs(&mut m);
    let after = rdtsc();
    let guest = m.as_slice()[0].data;
    got.is_ok_and(|n| n == 1) && (before..=after).contains(&guest)
}

/// How application code can learn which CPU it runs on without a syscall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuNumber {
    /// RDTSCP reports the TSC_AUX the Sentry gave the vCPU: its index.
    VcpuIndex,
    /// RDTSCP reports the host's TSC_AUX: the host CPU the thread runs on, as Linux numbers it.
    HostCpu,
    /// Neither could be confirmed: only the syscall answers.
    Unknown,
}

/// What the boot probe found.
#[derive(Clone, Copy, Debug)]
pub struct TimeProbe {
    /// Application code reads the host's TSC and it is invariant: the vDSO may use it.
    pub tsc_usable: bool,
    /// TSC frequency KVM reports, kHz (0 if unknown).
    pub tsc_khz: u32,
    pub cpu_number: CpuNumber,
}

impl TimeProbe {
    /// A probe that found nothing usable: every clock read goes to the Sentry.
    pub const NONE: TimeProbe =
        TimeProbe { tsc_usable: false, tsc_khz: 0, cpu_number: CpuNumber::Unknown };
}

/// Runs `lfence; rdtsc; rdtscp; syscall` at CPL3 on `vcpu` and compares what it read with the
/// host's counter and CPU.
pub fn probe(phys: &Physical, vcpu: &mut Vcpu) -> Result<TimeProbe, PlatformError> {
    const CODE: u64 = 0x40_0000;
    // lfence; rdtsc; shl rdx,32; or rax,rdx; mov r8,rax; rdtscp; mov r9,rcx; mov eax,39; syscall
    let code = [
        0x0f, 0xae, 0xe8, 0x0f, 0x31, 0x48, 0xc1, 0xe2, 0x20, 0x48, 0x09, 0xd0, 0x49, 0x89, 0xc0,
        0x0f, 0x01, 0xf9, 0x49, 0x89, 0xc9, 0xb8, 39, 0, 0, 0, 0x0f, 0x05,
    ];
    let oom = |_| PlatformError::Config("guest memory exhausted".into());
    let pt = PageTables::new(phys, layout::KERNEL_PDPT).map_err(oom)?;
    let frame = phys.alloc_frame().map_err(oom)?;
    phys.mem.write(frame, &code);
    // The page table's entry owns the frame's reference from here on.
    let result = match pt.map(phys, VirtAddr(CODE), Pte::user(frame, false, true)) {
        Ok(_) => run_probe(vcpu, pt.root().0, CODE),
        Err(e) => {
            phys.release_frames(&[frame]);
            Err(oom(e))
        }
    };
    let taken = pt.take_range(phys, VirtAddr(CODE), VirtAddr(CODE + PAGE_SIZE));
    let frames: Vec<_> = taken.iter().map(|(_, p)| p.frame()).collect();
    phys.unmap_frames(&frames);
    pt.destroy(phys);
    let (guest_tsc, aux, before, after, cpu_before, cpu_after) = result?;
    let tsc_khz = vcpu.tsc_khz().unwrap_or(0);
    // KVM's view (checked precisely when the vCPU was made) and the guest's own read must both be
    // the host's counter.
    let tsc_usable =
        host_tsc_invariant() && vcpu.tsc_aligned() && (before..=after).contains(&guest_tsc);
    // Linux's TSC_AUX is `node << 12 | cpu`.
    let cpu = u32::try_from(aux & 0xfff).ok();
    let cpu_number = if aux == AUX_SENTINEL {
        CpuNumber::VcpuIndex
    } else if cpu.is_some() && cpu == cpu_before && cpu == cpu_after {
        CpuNumber::HostCpu
    } else {
        CpuNumber::Unknown
    };
    let probe = TimeProbe { tsc_usable, tsc_khz, cpu_number };
    tracing::debug!(
        ?probe,
        guest_tsc,
        before,
        after,
        invariant = host_tsc_invariant(),
        "what application code sees of the TSC"
    );
    Ok(probe)
}

type ProbeRead = (u64, u64, u64, u64, Option<u32>, Option<u32>);

fn run_probe(vcpu: &mut Vcpu, cr3: u64, code: u64) -> Result<ProbeRead, PlatformError> {
    vcpu.set_tsc_aux(AUX_SENTINEL);
    let mut ctx = UserContext { cr3, ..Default::default() };
    ctx.regs.rip = code;
    ctx.regs.rflags = 0x202;
    let cpu_before = host_cpu();
    let before = rdtsc();
    let exit = vcpu.run(&mut ctx);
    let after = rdtsc();
    let cpu_after = host_cpu();
    vcpu.set_tsc_aux(vcpu.index());
    match exit? {
        Exit::Syscall if ctx.regs.rax == 39 => {
            Ok((ctx.regs.r8, ctx.regs.r9, before, after, cpu_before, cpu_after))
        }
        other => Err(PlatformError::UnexpectedExit(format!("TSC probe: {other:?}"))),
    }
}
