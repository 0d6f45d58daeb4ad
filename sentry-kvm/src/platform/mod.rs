//! Where application code runs. The Sentry's kernel sees a platform only through a context that
//! runs user code until an event (syscall, fault, interrupt); KVM is the one implementation.

pub mod kvm;

pub use kvm_bindings::kvm_regs as Regs;

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

/// A copy of a vCPU's FPU/SSE/AVX state (the 4 KiB legacy KVM_GET_XSAVE region).
pub fn copy_fpu(x: &kvm_bindings::kvm_xsave) -> kvm_bindings::kvm_xsave {
    kvm_bindings::kvm_xsave { region: x.region, ..Default::default() }
}
