//! One vCPU: runs application code at CPL3 until it makes a syscall, faults, or is kicked.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicPtr, Ordering};

use kvm_bindings::{CpuId, Msrs, kvm_msr_entry, kvm_regs, kvm_segment, kvm_sregs, kvm_xcrs};
use kvm_ioctls::{SyncReg, VcpuExit, VcpuFd};

use super::layout::*;
use super::trampoline::{self, StubExit};
use crate::mm::{PhysAddr, Physical};
use crate::platform::{Cpu, Exit, Fpu, Kick, PlatformError, UserContext};

const MSR_STAR: u32 = 0xc000_0081;
const MSR_LSTAR: u32 = 0xc000_0082;
const MSR_CSTAR: u32 = 0xc000_0083;
const MSR_SYSCALL_MASK: u32 = 0xc000_0084;

const CR0_PE: u64 = 1 << 0;
const CR0_MP: u64 = 1 << 1;
const CR0_ET: u64 = 1 << 4;
const CR0_NE: u64 = 1 << 5;
const CR0_WP: u64 = 1 << 16;
const CR0_AM: u64 = 1 << 18;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const CR4_PGE: u64 = 1 << 7;
const CR4_OSFXSR: u64 = 1 << 9;
const CR4_OSXMMEXCPT: u64 = 1 << 10;
const CR4_OSXSAVE: u64 = 1 << 18;
const EFER_SCE: u64 = 1 << 0;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
const EFER_NXE: u64 = 1 << 11;
/// RFLAGS bits cleared on `syscall` entry (TF, DF, IF, IOPL, NT, AC), as Linux does.
const SYSCALL_RFLAGS_MASK: u64 = 0x47700;

/// Signal used to kick a vCPU thread out of KVM_RUN.
fn kick_signal() -> libc::c_int {
    libc::SIGRTMIN() + 2
}

extern "C" fn on_kick(_: libc::c_int) {}

pub(super) fn install_kick_handler() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: installs an async-signal-safe empty handler; sigaction is zeroed first.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_kick as *const () as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(kick_signal(), &sa, std::ptr::null_mut());
        }
    });
}

/// Lets another thread interrupt this vCPU's KVM_RUN (signal delivery, TLB shootdown, exit).
pub struct Kicker {
    tid: AtomicI32,
    immediate_exit: AtomicPtr<u8>,
}

impl Kick for Kicker {
    /// Makes the current or next KVM_RUN of the vCPU return as `Exit::Interrupted`.
    fn kick(&self) {
        let p = self.immediate_exit.load(Ordering::Acquire);
        // SAFETY: `p` points into the vCPU's kvm_run mapping, which lives as long as the vCPU
        // and thus as long as any `Kicker` handed out for it (vCPUs are never destroyed before
        // the machine).
        unsafe { std::ptr::write_volatile(p, 1) };
        let tid = self.tid.load(Ordering::Acquire);
        if tid > 0 {
            // SAFETY: plain tgkill; a stale tid at worst signals a thread of our own process,
            // whose handler does nothing.
            unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, kick_signal()) };
        }
    }
}

pub struct Vcpu {
    fd: VcpuFd,
    index: u64,
    kicker: Arc<Kicker>,
    phys: Arc<Physical>,
    sregs: kvm_sregs,
    /// KVM reports the host's own TSC for this vCPU (see `tsc.rs`).
    tsc_aligned: bool,
}

impl Vcpu {
    pub(super) fn new(
        mut fd: VcpuFd,
        index: u64,
        cpuid: &CpuId,
        xcr0: u64,
        phys: Arc<Physical>,
    ) -> Result<Self, PlatformError> {
        let mut cpuid = cpuid.clone();
        for e in cpuid.as_mut_slice() {
            if e.function == 1 {
                e.ebx = (e.ebx & 0x00ff_ffff) | ((index as u32) << 24);
            }
        }
        fd.set_cpuid2(&cpuid).map_err(PlatformError::Kvm)?;
        let msrs = Msrs::from_entries(&[
            msr(MSR_STAR, (u64::from(USER32_CS) << 48) | (u64::from(KERNEL_CS) << 32)),
            msr(MSR_LSTAR, syscall_stub()),
            msr(MSR_CSTAR, syscall_stub()),
            msr(MSR_SYSCALL_MASK, SYSCALL_RFLAGS_MASK),
        ])
        .map_err(|e| PlatformError::Config(format!("building MSR list: {e:?}")))?;
        let n = fd.set_msrs(&msrs).map_err(PlatformError::Kvm)?;
        if n != 4 {
            return Err(PlatformError::Config(format!("KVM accepted {n} of 4 MSRs")));
        }

        let mut sregs = fd.get_sregs().map_err(PlatformError::Kvm)?;
        let has_xsave = xcr0 & 0x3 == 0x3
            && cpuid.as_slice().iter().any(|e| e.function == 1 && e.ecx & (1 << 26) != 0);
        sregs.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_AM | CR0_PG;
        sregs.cr4 = CR4_PAE | CR4_PGE | CR4_OSFXSR | CR4_OSXMMEXCPT;
        if has_xsave {
            sregs.cr4 |= CR4_OSXSAVE;
        }
        sregs.efer = EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE;
        let (gdt_base, gdt_limit) = trampoline::gdt_of(index);
        sregs.gdt.base = gdt_base;
        sregs.gdt.limit = gdt_limit;
        sregs.idt.base = virt(IDT);
        sregs.idt.limit = (16 * EXCEPTION_VECTORS - 1) as u16;
        sregs.tr = kvm_segment {
            base: trampoline::tss_of(index),
            limit: 0x67,
            selector: TSS_SELECTOR,
            type_: 11,
            present: 1,
            ..Default::default()
        };
        sregs.ldt = kvm_segment { unusable: 1, ..Default::default() };
        sregs.cs = user_code();
        sregs.ss = user_data(USER_DS);
        for s in [&mut sregs.ds, &mut sregs.es, &mut sregs.fs, &mut sregs.gs] {
            *s = user_data(0);
        }
        if has_xsave {
            let mut xcrs = kvm_xcrs { nr_xcrs: 1, ..Default::default() };
            xcrs.xcrs[0].xcr = 0;
            xcrs.xcrs[0].value = xcr0;
            fd.set_xcrs(&xcrs).map_err(PlatformError::Kvm)?;
        }

        let tsc_aligned = super::tsc::align(&fd);
        let kicker = Arc::new(Kicker {
            tid: AtomicI32::new(0),
            immediate_exit: AtomicPtr::new(&mut fd.get_kvm_run().immediate_exit as *mut u8),
        });
        let vcpu = Self { fd, index, kicker, phys, sregs, tsc_aligned };
        // RDTSCP's TSC_AUX names the vCPU, where the platform honours it (getcpu in the vDSO).
        vcpu.set_tsc_aux(index);
        Ok(vcpu)
    }

    /// The TSC frequency KVM gives this vCPU.
    pub fn tsc_khz(&self) -> Option<u32> {
        self.fd.get_tsc_khz().ok()
    }

    /// Sets what RDTSCP reports in ECX (where the platform honours it).
    pub fn set_tsc_aux(&self, value: u64) {
        let set = Msrs::from_entries(&[msr(super::tsc::MSR_TSC_AUX, value)])
            .ok()
            .is_some_and(|m| self.fd.set_msrs(&m).is_ok_and(|n| n == 1));
        if !set {
            tracing::debug!("KVM did not take TSC_AUX {value:#x}");
        }
    }

    fn stub_exit(
        &mut self,
        regs: kvm_regs,
        ctx: &mut UserContext,
    ) -> Result<Option<Exit>, PlatformError> {
        match trampoline::classify_exit(regs.rip) {
            Some(StubExit::Syscall) => {
                ctx.regs = regs;
                ctx.regs.rip = regs.rcx;
                ctx.regs.rflags = regs.r11;
                Ok(Some(Exit::Syscall))
            }
            Some(StubExit::Exception(vector)) => {
                let has_error = matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30);
                let frame = self.read_frame(regs.rsp, if has_error { 6 } else { 5 })?;
                let (error_code, f) =
                    if has_error { (frame[0], &frame[1..]) } else { (0, &frame[..]) };
                if vector == 13 && f[0] == syscall_stub() {
                    // Some nested hosts (kvm_pvm) run the `syscall` target with CPL3 privileges,
                    // so the stub's `out` raises #GP instead of exiting. RCX and R11 still hold
                    // the user RIP and RFLAGS: it is a syscall all the same.
                    ctx.regs = regs;
                    ctx.regs.rip = regs.rcx;
                    ctx.regs.rflags = regs.r11;
                    ctx.regs.rsp = f[3];
                    return Ok(Some(Exit::Syscall));
                }
                ctx.regs = regs;
                ctx.regs.rip = f[0];
                ctx.regs.rflags = f[2];
                ctx.regs.rsp = f[3];
                let addr = if vector == 14 {
                    self.fd.get_sregs().map_err(PlatformError::Kvm)?.cr2
                } else {
                    0
                };
                if f[1] & 3 != 3 {
                    return Err(PlatformError::UnexpectedExit(format!(
                        "exception {vector} at CPL0, rip {:#x} error {error_code:#x} addr {addr:#x}",
                        f[0]
                    )));
                }
                Ok(Some(Exit::Fault { vector, error_code, addr }))
            }
            // Port I/O by application code itself (some nested hosts let it exit instead of
            // faulting): what Linux would do is raise #GP.
            None => {
                ctx.regs = regs;
                Ok(Some(Exit::Fault { vector: 13, error_code: 0, addr: 0 }))
            }
        }
    }

    /// Reads `n` quadwords of the exception frame at kernel stack address `rsp`.
    fn read_frame(&self, rsp: u64, n: usize) -> Result<Vec<u64>, PlatformError> {
        let top = cpu_stack_top(self.index);
        let bottom = top - 4096;
        if rsp < bottom || rsp + 8 * n as u64 > top {
            return Err(PlatformError::UnexpectedExit(format!(
                "exception frame outside the stack: rsp {rsp:#x}"
            )));
        }
        let phys = PhysAddr(rsp - KERNEL_VIRT_BASE);
        Ok((0..n).map(|i| self.phys.mem.read_u64(PhysAddr(phys.0 + 8 * i as u64))).collect())
    }
}

impl Cpu for Vcpu {
    /// Binds the vCPU to the calling thread for kicks; returns the handle other threads use.
    fn bind_current_thread(&self) -> Arc<dyn Kick> {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) } as i32;
        self.kicker.tid.store(tid, Ordering::Release);
        self.kicker.clone()
    }

    /// Runs application code with `ctx` until the next event, updating `ctx` to the
    /// application's state at that event.
    fn run(&mut self, ctx: &mut UserContext) -> Result<Exit, PlatformError> {
        self.sregs.cr3 = ctx.cr3;
        self.sregs.fs.base = ctx.fs_base;
        self.sregs.gs.base = ctx.gs_base;
        self.sregs.cs = user_code();
        self.sregs.ss = user_data(USER_DS);
        {
            // Registers travel through the shared kvm_run page: no ioctl per exit for them.
            let sync = self.fd.sync_regs_mut();
            sync.regs = ctx.regs;
            sync.sregs = self.sregs;
        }
        self.fd.set_sync_dirty_reg(SyncReg::Register);
        self.fd.set_sync_dirty_reg(SyncReg::SystemRegister);
        self.fd.set_sync_valid_reg(SyncReg::Register);
        loop {
            let exit = match self.fd.run() {
                Ok(VcpuExit::IoOut(..)) | Ok(VcpuExit::IoIn(..)) => {
                    let regs = self.fd.sync_regs().regs;
                    self.stub_exit(regs, ctx)?
                }
                Ok(VcpuExit::Intr) => None,
                Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => None,
                Ok(other) => {
                    let what = format!("{other:?}");
                    let rip = self.fd.get_regs().map(|r| r.rip).unwrap_or(0);
                    return Err(PlatformError::UnexpectedExit(format!("{what} at rip {rip:#x}")));
                }
                Err(e) => return Err(PlatformError::Kvm(e)),
            };
            if let Some(exit) = exit {
                return Ok(exit);
            }
            self.fd.get_kvm_run().immediate_exit = 0;
            let regs = self.fd.sync_regs().regs;
            // A kick that lands inside the entry stubs (CPL0, between the application's
            // `syscall` or fault and the stub's exit) leaves no application state to resume:
            // those registers are the stub's. Let the stub reach its exit; the kick is seen
            // on the way back to application code.
            if regs.rip >= KERNEL_VIRT_BASE {
                continue;
            }
            ctx.regs = regs;
            return Ok(Exit::Interrupted);
        }
    }

    fn index(&self) -> u64 {
        self.index
    }

    /// Whether application code on this vCPU reads the host's TSC (the vDSO's clock).
    fn tsc_aligned(&self) -> bool {
        self.tsc_aligned
    }

    /// The FPU/SSE/AVX state, in XSAVE layout.
    fn get_fpu(&self) -> Result<Fpu, PlatformError> {
        self.fd.get_xsave().map_err(PlatformError::Kvm)
    }

    fn set_fpu(&mut self, state: &Fpu) -> Result<(), PlatformError> {
        // SAFETY: a kvm_xsave obtained from KVM_GET_XSAVE (or a copy of one with edited
        // legacy fields) is the size the ioctl expects.
        unsafe { self.fd.set_xsave(state) }.map_err(PlatformError::Kvm)
    }
}

pub(super) fn msr(index: u32, data: u64) -> kvm_msr_entry {
    kvm_msr_entry { index, data, ..Default::default() }
}

fn user_code() -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector: USER_CS,
        type_: 11,
        present: 1,
        dpl: 3,
        db: 0,
        s: 1,
        l: 1,
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

fn user_data(selector: u16) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        type_: 3,
        present: 1,
        dpl: 3,
        db: 1,
        s: 1,
        l: 0,
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}
