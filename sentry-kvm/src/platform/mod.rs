//! Where application code runs. The Sentry's kernel sees a platform only through `Platform`,
//! which hands each task's host thread a `Cpu` that runs user code until an event (syscall,
//! fault, interrupt). KVM runs it at CPL3 in a VM of the Sentry's (exits are cheap with
//! hardware virtualisation); systrap runs it in stub processes under seccomp (cheap where a
//! KVM exit is not, on nested hosts).

pub mod choice;
pub mod kvm;
pub mod systrap;

use std::sync::Arc;

use crate::mm::Physical;

pub use kvm_bindings::kvm_regs as Regs;

/// FPU/SSE/AVX state in the 4 KiB legacy XSAVE layout (what signal frames and clones copy).
pub type Fpu = kvm_bindings::kvm_xsave;

/// Which platform a sandbox runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PlatformKind {
    #[default]
    Kvm,
    Systrap,
}

impl PlatformKind {
    /// The name `--platform` takes.
    pub fn name(self) -> &'static str {
        match self {
            PlatformKind::Kvm => "kvm",
            PlatformKind::Systrap => "systrap",
        }
    }

    pub fn from_name(name: &str) -> Option<PlatformKind> {
        [PlatformKind::Kvm, PlatformKind::Systrap].into_iter().find(|p| p.name() == name)
    }
}

/// A sandbox's platform: its guest-physical memory, and CPUs for the tasks' host threads.
pub trait Platform: Send + Sync {
    /// The memory every address space of the sandbox draws from.
    fn phys(&self) -> &Arc<Physical>;
    /// A CPU for the calling thread (a pooled one, or a new one while under the limit).
    fn acquire(&self) -> Result<Box<dyn Cpu>, PlatformError>;
    /// Returns a CPU to the pool when its task's thread ends.
    fn release(&self, cpu: Box<dyn Cpu>);
}

/// What one task's host thread runs application code on.
pub trait Cpu: std::any::Any + Send {
    /// Runs application code with `ctx` until the next event, updating `ctx` to the
    /// application's state at that event.
    fn run(&mut self, ctx: &mut UserContext) -> Result<Exit, PlatformError>;
    fn get_fpu(&self) -> Result<Fpu, PlatformError>;
    fn set_fpu(&mut self, state: &Fpu) -> Result<(), PlatformError>;
    /// The CPU number application code sees (getcpu).
    fn index(&self) -> u64;
    /// Whether application code reads the host's own TSC (the vDSO clock's premise).
    fn tsc_aligned(&self) -> bool;
    /// Binds the CPU to the calling thread; other threads interrupt it through the result.
    fn bind_current_thread(&self) -> Arc<dyn Kick>;
}

/// Interrupts a CPU's `run` from another thread (signal delivery, shootdown, exit).
pub trait Kick: Send + Sync {
    /// Makes the current or next `run` return `Exit::Interrupted`.
    fn kick(&self);
    /// Time application code ran outside the bound thread's own CPU clock since the binding
    /// (a stub thread's); KVM's guest time is the vCPU thread's.
    fn app_time(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

/// Application state carried between runs: registers plus the Sentry-owned parts of the
/// segment state (address space root, TLS bases).
#[derive(Clone, Copy, Debug, Default)]
pub struct UserContext {
    pub regs: Regs,
    pub cr3: u64,
    pub fs_base: u64,
    pub gs_base: u64,
}

/// Why user code stopped running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// A `syscall`: number in rax, arguments in rdi, rsi, rdx, r10, r8, r9; rip is the
    /// instruction after it.
    Syscall,
    /// A CPU exception raised by user code; `addr` is CR2 for page faults.
    Fault { vector: u8, error_code: u64, addr: u64 },
    /// Another thread kicked this vCPU (pending signal, shootdown, exit).
    Interrupted,
}

#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("KVM: {0}")]
    Kvm(#[from] vmm_sys_util::errno::Error),
    #[error("platform configuration: {0}")]
    Config(String),
    #[error("all {0} vCPUs are in use")]
    NoVcpu(u64),
    #[error("unexpected exit from the guest: {0}")]
    UnexpectedExit(String),
}

/// A copy of FPU state (the 4 KiB legacy region; no extended area).
pub fn copy_fpu(x: &Fpu) -> Fpu {
    Fpu { region: x.region, ..Default::default() }
}
