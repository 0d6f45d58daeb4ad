//! Where a stub process keeps its code and its threads' pages, and what those pages hold. The
//! region sits above the application's address space (`TASK_SIZE`), at the same address in
//! every stub; the Sentry maps the same memory elsewhere in its own address space.

use crate::mm::address_space::TASK_SIZE;

/// Start of the region in a stub process.
pub const BASE: u64 = TASK_SIZE;
/// The stub's code: one read-only, executable page.
pub const CODE_SIZE: u64 = 0x1000;
/// Thread slots start here, one per stub thread; slot 0 is the control thread's.
pub const SLOTS: u64 = 0x10000;
/// A slot: its message page, then its signal stack. A power of two: the signal handler finds
/// its slot by masking its stack pointer.
pub const SLOT_SIZE: u64 = 0x10000;
pub const MAX_SLOTS: u64 = 1024;
pub const SIZE: u64 = SLOTS + MAX_SLOTS * SLOT_SIZE;
/// End of the region (exclusive).
pub const END: u64 = BASE + SIZE;
/// End of the user address space of the host.
pub const USER_TOP: u64 = 0x7fff_ffff_f000;

const _: () = assert!(END <= USER_TOP && BASE.is_multiple_of(SLOT_SIZE));

/// Offset of slot `k` in the region.
pub const fn slot(k: u64) -> u64 {
    SLOTS + k * SLOT_SIZE
}

/// The message page of a slot, shared by a stub thread and the Sentry thread driving it.
pub mod msg {
    /// u32 futex word: one of the `state` values.
    pub const STATE: u64 = 0;
    /// u32: the stub thread's host tid (set by the kernel, cleared when the thread exits).
    pub const TID: u64 = 4;
    /// The signal that stopped the thread.
    pub const SIGNO: u64 = 8;
    /// siginfo's si_addr (faults).
    pub const ADDR: u64 = 16;
    /// siginfo's si_syscall (low half) and si_arch (high half), for SIGSYS.
    pub const SYSCALL: u64 = 24;
    /// FS base: read by the stub when it stops, set from here when it resumes.
    pub const FS_BASE: u64 = 32;
    /// The stub's address of its signal frame's ucontext.
    pub const UCONTEXT: u64 = 40;
    /// FS base as the stub found it (it sets it only when `FS_BASE` differs).
    pub const FS_SEEN: u64 = 48;
    /// u32: set while the Sentry thread sleeps on `STATE` (a stub thread then wakes it).
    pub const SENTRY_WAITING: u64 = 56;
    /// u32: set while the stub thread sleeps on `STATE` (the Sentry then wakes it).
    pub const STUB_WAITING: u64 = 60;
    /// u32: rounds of `pause` the stub thread polls `STATE` for before it sleeps, set by the
    /// Sentry (the Sentry thread waiting on it polls as long).
    pub const SPIN_ROUNDS: u64 = 368;
    /// The 23 general registers of the signal frame (struct sigcontext's first fields).
    pub const REGS: u64 = 64;
    /// A syscall for the stub thread to make: number, then six arguments.
    pub const CALL: u64 = 256;
    /// Its result.
    pub const RESULT: u64 = 320;
    /// stack_t for the thread's sigaltstack.
    pub const ALTSTACK: u64 = 336;
    /// Mappings for the stub thread to make (application slots only): address, length,
    /// protection, offset in guest memory; `CALL` holds how many.
    pub const BATCH: u64 = 2048;
    pub const BATCH_MAX: usize = 64;
    // The control thread's set-up (slot 0 only).
    /// Address of the rseq area the Sentry thread that cloned the stub had registered.
    pub const RSEQ: u64 = 384;
    pub const RSEQ_LEN: u64 = 392;
    /// The guest memory's descriptor number: every other descriptor is closed.
    pub const GUEST_FD: u64 = 400;
    /// Signal mask of the stub's threads.
    pub const SIGMASK: u64 = 408;
    /// Non-zero where user code may use rdfsbase/wrfsbase (the kernel's HWCAP2_FSGSBASE).
    pub const FSGSBASE: u64 = 376;
    /// Signals the handler takes (u32 each, zero-terminated).
    pub const SIGNALS: u64 = 416;
    /// The kernel sigaction for them.
    pub const SIGACTION: u64 = 448;
    /// sock_fprog of the stub's seccomp filter.
    pub const FPROG: u64 = 480;
    /// The filter's instructions.
    pub const FILTER: u64 = 512;
    pub const FILTER_MAX: usize = (4096 - FILTER as usize) / 8;
}

/// Rounds of `pause` a waiting side polls the state word for before it sleeps on it (while
/// polling is on: see `StubCpu::run`): on the order of 10 µs, more than a syscall the Sentry
/// answers at once takes, so a thread making syscalls in a row and the Sentry thread answering
/// it on another CPU never sleep (a futex wake-up across CPUs costs several microseconds on a
/// nested host).
pub const SPIN_LIMIT: u32 = 1000;

/// Values of a message page's state word.
pub mod state {
    /// The stub thread stopped (signal): the Sentry's turn.
    pub const TRAPPED: u32 = 1;
    /// The Sentry wrote registers: the stub thread's turn to run application code.
    pub const RESUME: u32 = 2;
    /// The Sentry asks the stub thread to make the syscall in `msg::CALL`.
    pub const CALL: u32 = 3;
    /// The syscall was made; its result is in `msg::RESULT`.
    pub const DONE: u32 = 4;
    /// The Sentry asks the stub thread to make the mappings in `msg::BATCH`.
    pub const MAP: u32 = 5;
}

/// struct sigcontext's register order.
pub mod reg {
    pub const R8: usize = 0;
    pub const R9: usize = 1;
    pub const R10: usize = 2;
    pub const R11: usize = 3;
    pub const R12: usize = 4;
    pub const R13: usize = 5;
    pub const R14: usize = 6;
    pub const R15: usize = 7;
    pub const RDI: usize = 8;
    pub const RSI: usize = 9;
    pub const RBP: usize = 10;
    pub const RBX: usize = 11;
    pub const RDX: usize = 12;
    pub const RAX: usize = 13;
    pub const RCX: usize = 14;
    pub const RSP: usize = 15;
    pub const RIP: usize = 16;
    pub const EFLAGS: usize = 17;
    pub const ERR: usize = 19;
    pub const TRAPNO: usize = 20;
    pub const COUNT: usize = 23;
    /// Registers a resume writes back (up to and with EFLAGS; not the segment word).
    pub const RESTORED: usize = 18;
}
