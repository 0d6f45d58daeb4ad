//! The stub's code, copied to the first page of every stub's region. It only ever runs there:
//! everything is position-independent or an absolute address of the region.
//!
//! The control thread (slot 0) sets the process up (drops what it inherited from the Sentry,
//! installs the signal handler and the seccomp filter) and then makes syscalls the Sentry asks
//! for: mappings of guest memory, new threads. Every other thread runs application code; its
//! syscalls and faults raise a signal whose handler reports the registers in its slot's
//! message page, waits on a futex there, and returns into the registers the Sentry wrote.

use std::arch::global_asm;

use super::layout::{self, msg, state};

/// Waits on the state word of the message page at r12 while it holds eax (FUTEX_WAIT, shared).
macro_rules! futex_wait {
    () => {
        concat!(
            "  mov edx, eax\n",
            "  mov eax, 202\n",
            "  lea rdi, [r12 + {state}]\n",
            "  xor esi, esi\n",
            "  xor r10d, r10d\n",
            "  syscall",
        )
    };
}

/// Wakes the Sentry thread waiting on the state word of the message page at r12.
macro_rules! futex_wake {
    () => {
        concat!(
            "  mov eax, 202\n",
            "  lea rdi, [r12 + {state}]\n",
            "  mov esi, 1\n",
            "  mov edx, 1\n",
            "  syscall",
        )
    };
}

/// Makes the syscall in the message page at r12 (number, then six arguments).
macro_rules! page_syscall {
    () => {
        concat!(
            "  mov rax, [r12 + {call_args}]\n",
            "  mov rdi, [r12 + {call_args} + 8]\n",
            "  mov rsi, [r12 + {call_args} + 16]\n",
            "  mov rdx, [r12 + {call_args} + 24]\n",
            "  mov r10, [r12 + {call_args} + 32]\n",
            "  mov r8, [r12 + {call_args} + 40]\n",
            "  mov r9, [r12 + {call_args} + 48]\n",
            "  syscall",
        )
    };
}

global_asm!(
    ".pushsection .text.ringfence_stub, \"ax\"",
    ".p2align 12",
    ".globl ringfence_stub_start",
    "ringfence_stub_start:",
    // The control thread: entered with nothing else mapped yet but this region.
    "  movabs r12, {slot0}",
    "  lea rsp, [r12 + {slot_size}]",
    ".globl ringfence_stub_syscalls",
    "ringfence_stub_syscalls:",
    // The cloning thread's rseq area is about to go away: unregister it first.
    "  mov eax, 334",
    "  mov rdi, [r12 + {rseq}]",
    "  mov esi, [r12 + {rseq_len}]",
    "  mov edx, 1",
    "  mov r10d, 0x53053053",
    "  syscall",
    // Unmap all of the Sentry's copy but the region.
    "  mov eax, 11",
    "  xor edi, edi",
    "  movabs rsi, {base}",
    "  syscall",
    "  mov eax, 11",
    "  movabs rdi, {end}",
    "  movabs rsi, {above}",
    "  syscall",
    // Close every descriptor but guest memory's.
    "  mov r13, [r12 + {guest_fd}]",
    "  test r13, r13",
    "  jz 1f",
    "  mov eax, 436",
    "  xor edi, edi",
    "  lea rsi, [r13 - 1]",
    "  xor edx, edx",
    "  syscall",
    "1:",
    "  mov eax, 436",
    "  lea rdi, [r13 + 1]",
    "  mov esi, 0xffffffff",
    "  xor edx, edx",
    "  syscall",
    // One handler for every signal in the list.
    "  lea r14, [r12 + {signals}]",
    "2:",
    "  mov edi, [r14]",
    "  test edi, edi",
    "  jz 3f",
    "  mov eax, 13",
    "  lea rsi, [r12 + {sigaction}]",
    "  xor edx, edx",
    "  mov r10d, 8",
    "  syscall",
    "  test rax, rax",
    "  jnz 9f",
    "  add r14, 4",
    "  jmp 2b",
    "3:",
    "  mov eax, 14",
    "  mov edi, 2",
    "  lea rsi, [r12 + {sigmask}]",
    "  xor edx, edx",
    "  mov r10d, 8",
    "  syscall",
    // Die with the Sentry.
    "  mov eax, 157",
    "  mov edi, 1",
    "  mov esi, 9",
    "  syscall",
    "  mov eax, 157",
    "  mov edi, 38",
    "  mov esi, 1",
    "  xor edx, edx",
    "  xor r10d, r10d",
    "  xor r8d, r8d",
    "  syscall",
    "  mov eax, 317",
    "  mov edi, 1",
    "  xor esi, esi",
    "  lea rdx, [r12 + {fprog}]",
    "  syscall",
    "  test rax, rax",
    "  jnz 9f",
    // Ready: serve the Sentry's requests.
    "  mov dword ptr [r12 + {state}], {done}",
    "4:",
    futex_wake!(),
    "5:",
    "  mov dword ptr [r12 + {stub_waiting}], 1",
    "  mfence",
    "  mov eax, [r12 + {state}]",
    "  cmp eax, {call}",
    "  je 6f",
    futex_wait!(),
    "  jmp 5b",
    "6:",
    "  mov dword ptr [r12 + {stub_waiting}], 0",
    page_syscall!(),
    // A new thread returns here too, with rax 0 and its own stack.
    "  cmp qword ptr [r12 + {call_args}], 56",
    "  jne 7f",
    "  test rax, rax",
    "  jz 8f",
    "7:",
    "  mov [r12 + {result}], rax",
    "  mov dword ptr [r12 + {state}], {done}",
    "  jmp 4b",
    // A new application thread: its slot is where its stack is.
    "8:",
    "  lea r12, [rsp - 1]",
    "  and r12, {slot_mask}",
    "  mov eax, 131",
    "  lea rdi, [r12 + {altstack}]",
    "  xor esi, esi",
    "  syscall",
    // Its first stop: the Sentry then gives it its registers.
    "  ud2",
    "9:",
    "  mov eax, 231",
    "  mov edi, 127",
    "  syscall",
    // The handler of every signal: (signo, siginfo, ucontext) on the slot's signal stack.
    ".globl ringfence_stub_handler",
    "ringfence_stub_handler:",
    "  lea r12, [rsp - 1]",
    "  and r12, {slot_mask}",
    "  mov r13, rdx",
    "  mov [r12 + {uctx}], rdx",
    "  mov eax, edi",
    "  mov [r12 + {signo}], rax",
    "  mov rax, [rsi + 16]",
    "  mov [r12 + {addr}], rax",
    "  mov rax, [rsi + 24]",
    "  mov [r12 + {sysno}], rax",
    "  lea rsi, [r13 + 40]",
    "  lea rdi, [r12 + {regs}]",
    "  mov ecx, {nregs}",
    "  rep movsq",
    // FS base: with FSGSBASE where the kernel allows it (no syscall), else arch_prctl.
    "  movabs rax, {slot0}",
    "  cmp qword ptr [rax + {fsgsbase}], 0",
    "  je 14f",
    "  rdfsbase rax",
    "  mov [r12 + {fs_base}], rax",
    "  jmp 15f",
    "14:",
    "  mov eax, 158",
    "  mov edi, 0x1003",
    "  lea rsi, [r12 + {fs_base}]",
    "  syscall",
    "15:",
    "  mov rax, [r12 + {fs_base}]",
    "  mov [r12 + {fs_seen}], rax",
    "  mov eax, {trapped}",
    // The state is stored (xchg: a full barrier) before the Sentry's flag is read, as the
    // Sentry sets its flag before it reads the state: one of the two sees the other.
    "10:",
    "  xchg [r12 + {state}], eax",
    "  cmp dword ptr [r12 + {sentry_waiting}], 0",
    "  je 22f",
    futex_wake!(),
    // Poll for the Sentry's answer a while (it may be running on another CPU), then sleep.
    "22:",
    "  mov ecx, [r12 + {spin_rounds}]",
    "11:",
    "  mov eax, [r12 + {state}]",
    "  cmp eax, {resume}",
    "  je 13f",
    "  cmp eax, {call}",
    "  je 12f",
    "  cmp eax, {map}",
    "  je 18f",
    "  test ecx, ecx",
    "  jz 23f",
    "  dec ecx",
    "  pause",
    "  jmp 11b",
    "23:",
    "  mov edx, 1",
    "  xchg [r12 + {stub_waiting}], edx",
    "  mov eax, [r12 + {state}]",
    "  cmp eax, {trapped}",
    "  je 24f",
    "  cmp eax, {done}",
    "  jne 25f",
    "24:",
    futex_wait!(),
    "25:",
    "  mov dword ptr [r12 + {stub_waiting}], 0",
    "  jmp 22b",
    "12:",
    page_syscall!(),
    "  mov [r12 + {result}], rax",
    "  mov eax, {done}",
    "  jmp 10b",
    // A batch of mappings of guest memory: (address, length, protection, offset) each; the
    // result is the first failure's, or 0.
    "18:",
    "  mov r14, [r12 + {call_args}]",
    "  lea r15, [r12 + {batch}]",
    "  movabs rax, {slot0}",
    "  mov rbx, [rax + {guest_fd}]",
    "  xor ebp, ebp",
    "19:",
    "  test r14, r14",
    "  jz 20f",
    "  mov eax, 9",
    "  mov rdi, [r15]",
    "  mov rsi, [r15 + 8]",
    "  mov rdx, [r15 + 16]",
    "  mov r10d, 0x11",
    "  mov r8, rbx",
    "  mov r9, [r15 + 24]",
    "  syscall",
    "  cmp rax, [r15]",
    "  je 21f",
    "  test rbp, rbp",
    "  jnz 21f",
    "  mov rbp, rax",
    "21:",
    "  add r15, 32",
    "  dec r14",
    "  jmp 19b",
    "20:",
    "  mov [r12 + {result}], rbp",
    "  mov eax, {done}",
    "  jmp 10b",
    "13:",
    "  mov rsi, [r12 + {fs_base}]",
    "  cmp rsi, [r12 + {fs_seen}]",
    "  je 17f",
    "  movabs rax, {slot0}",
    "  cmp qword ptr [rax + {fsgsbase}], 0",
    "  je 16f",
    "  wrfsbase rsi",
    "  jmp 17f",
    "16:",
    "  mov eax, 158",
    "  mov edi, 0x1002",
    "  syscall",
    "17:",
    "  lea rsi, [r12 + {regs}]",
    "  lea rdi, [r13 + 40]",
    "  mov ecx, {restored}",
    "  rep movsq",
    "  ret",
    ".globl ringfence_stub_restorer",
    "ringfence_stub_restorer:",
    "  mov eax, 15",
    "  syscall",
    // seccomp sees the address after a syscall instruction: the range ends past the last.
    "  ud2",
    ".globl ringfence_stub_syscalls_end",
    "ringfence_stub_syscalls_end:",
    ".globl ringfence_stub_end",
    "ringfence_stub_end:",
    ".popsection",
    slot0 = const layout::BASE + layout::slot(0),
    slot_size = const layout::SLOT_SIZE,
    slot_mask = const !(layout::SLOT_SIZE - 1) as i64 as i32,
    base = const layout::BASE,
    end = const layout::END,
    above = const layout::USER_TOP - layout::END,
    rseq = const msg::RSEQ,
    rseq_len = const msg::RSEQ_LEN,
    guest_fd = const msg::GUEST_FD,
    signals = const msg::SIGNALS,
    sigaction = const msg::SIGACTION,
    sigmask = const msg::SIGMASK,
    fprog = const msg::FPROG,
    state = const msg::STATE,
    call_args = const msg::CALL,
    result = const msg::RESULT,
    altstack = const msg::ALTSTACK,
    uctx = const msg::UCONTEXT,
    signo = const msg::SIGNO,
    addr = const msg::ADDR,
    sysno = const msg::SYSCALL,
    regs = const msg::REGS,
    fs_base = const msg::FS_BASE,
    fs_seen = const msg::FS_SEEN,
    fsgsbase = const msg::FSGSBASE,
    nregs = const layout::reg::COUNT,
    restored = const layout::reg::RESTORED,
    trapped = const state::TRAPPED,
    resume = const state::RESUME,
    call = const state::CALL,
    done = const state::DONE,
    map = const state::MAP,
    batch = const msg::BATCH,
    sentry_waiting = const msg::SENTRY_WAITING,
    stub_waiting = const msg::STUB_WAITING,
    spin_rounds = const msg::SPIN_ROUNDS,
);

unsafe extern "C" {
    static ringfence_stub_start: u8;
    static ringfence_stub_syscalls: u8;
    static ringfence_stub_handler: u8;
    static ringfence_stub_restorer: u8;
    static ringfence_stub_syscalls_end: u8;
    static ringfence_stub_end: u8;
}

/// The stub's code and where its entry points are, as offsets into it.
pub struct StubCode {
    pub bytes: &'static [u8],
    /// Range of return addresses of the stub's own syscalls (what its seccomp filter allows).
    pub syscalls: std::ops::Range<u64>,
    pub handler: u64,
    pub restorer: u64,
}

pub fn stub_code() -> StubCode {
    // SAFETY: the symbols are labels of the assembly above, in one section, in this order;
    // only their addresses are taken.
    unsafe {
        let start = &raw const ringfence_stub_start as u64;
        let at = |p: *const u8| p as u64 - start;
        let len = at(&raw const ringfence_stub_end);
        StubCode {
            bytes: std::slice::from_raw_parts(start as *const u8, len as usize),
            syscalls: at(&raw const ringfence_stub_syscalls)
                ..at(&raw const ringfence_stub_syscalls_end),
            handler: at(&raw const ringfence_stub_handler),
            restorer: at(&raw const ringfence_stub_restorer),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_stub_fits_its_page() {
        let c = super::stub_code();
        assert!(c.bytes.len() as u64 <= super::layout::CODE_SIZE, "{} bytes", c.bytes.len());
        assert!(c.syscalls.start < c.handler && c.restorer < c.syscalls.end);
    }
}
