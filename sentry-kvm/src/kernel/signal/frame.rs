//! The x86-64 signal frame (`struct rt_sigframe`) written on the user stack, and its restore
//! by rt_sigreturn.

use crate::abi::Errno;
use crate::abi::signal::{SS_DISABLE, SS_ONSTACK, SigInfo, SigSet};
use crate::kernel::signal::AltStack;
use crate::mm::address_space::MemoryManager;
use crate::platform::Regs;

const UC_FP_XSTATE: u64 = 1;
const UC_SIGCONTEXT_SS: u64 = 2;
const UC_STRICT_RESTORE_SS: u64 = 4;
/// Bytes of `kvm_xsave` saved in the frame.
pub const XSAVE_BYTES: usize = 4096;
const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;
const FP_XSTATE_MAGIC2: u32 = 0x4650_5845;

// Offsets inside the frame.
const OFF_UC: u64 = 8;
const OFF_STACK: u64 = 24;
const OFF_MCONTEXT: u64 = 48;
const OFF_SIGMASK: u64 = 304;
const OFF_INFO: u64 = 312;
const FRAME_SIZE: u64 = 440;

/// RFLAGS bits a handler may change through sigreturn (CF PF AF ZF SF TF DF OF AC RF, as
/// Linux's FIX_EFLAGS; never IF or IOPL).
const FIX_EFLAGS: u64 = 0x0005_0dd5;

/// What the frame needs beyond the registers.
pub struct FrameSetup<'a> {
    pub regs: &'a Regs,
    pub info: &'a SigInfo,
    pub handler: u64,
    pub restorer: u64,
    pub on_altstack: bool,
    pub altstack: AltStack,
    pub saved_mask: SigSet,
    pub fpu: &'a [u8],
    pub trapno: u64,
    pub err: u64,
    pub cr2: u64,
}

/// Writes the frame and returns the registers the handler starts with.
pub fn build(mm: &MemoryManager, f: &FrameSetup) -> Result<Regs, Errno> {
    let regs = f.regs;
    let mut sp =
        if f.on_altstack { f.altstack.sp + f.altstack.size } else { regs.rsp.wrapping_sub(128) };
    // FPU state, 64-byte aligned.
    sp = sp.checked_sub(f.fpu.len() as u64 + 4).ok_or(Errno::EFAULT)? & !63;
    let fpstate = sp;
    let mut fpu = f.fpu.to_vec();
    // Mark the legacy area as carrying extended state (sw_reserved at 464).
    if fpu.len() >= 512 {
        fpu[464..468].copy_from_slice(&FP_XSTATE_MAGIC1.to_le_bytes());
        fpu[468..472].copy_from_slice(&((f.fpu.len() + 4) as u32).to_le_bytes());
        let xfeatures = u64::from_le_bytes(fpu[512..520].try_into().unwrap_or([0; 8]));
        fpu[472..480].copy_from_slice(&xfeatures.to_le_bytes());
        fpu[480..484].copy_from_slice(&(f.fpu.len() as u32).to_le_bytes());
    }
    fpu.extend_from_slice(&FP_XSTATE_MAGIC2.to_le_bytes());
    mm.copy_out(fpstate, &fpu)?;

    sp = sp.checked_sub(FRAME_SIZE).ok_or(Errno::EFAULT)?;
    sp = (sp & !15) - 8;
    let frame = sp;
    let mut b = vec![0u8; FRAME_SIZE as usize];
    let mut put =
        |off: u64, v: u64| b[off as usize..off as usize + 8].copy_from_slice(&v.to_le_bytes());
    put(0, f.restorer);
    put(OFF_UC, UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS);
    put(OFF_UC + 8, 0);
    put(OFF_STACK, f.altstack.sp);
    let ss_flags = if f.altstack.size == 0 {
        SS_DISABLE
    } else if f.altstack.contains(regs.rsp) {
        SS_ONSTACK
    } else {
        0
    };
    put(OFF_STACK + 8, ss_flags as u32 as u64);
    put(OFF_STACK + 16, f.altstack.size);
    let m = OFF_MCONTEXT;
    let gregs = [
        regs.r8,
        regs.r9,
        regs.r10,
        regs.r11,
        regs.r12,
        regs.r13,
        regs.r14,
        regs.r15,
        regs.rdi,
        regs.rsi,
        regs.rbp,
        regs.rbx,
        regs.rdx,
        regs.rax,
        regs.rcx,
        regs.rsp,
        regs.rip,
        regs.rflags,
    ];
    for (i, v) in gregs.iter().enumerate() {
        put(m + 8 * i as u64, *v);
    }
    // cs, gs, fs, ss
    let segs: u64 = u64::from(crate::platform::kvm::layout::USER_CS)
        | (u64::from(crate::platform::kvm::layout::USER_DS) << 48);
    put(m + 144, segs);
    put(m + 152, f.err);
    put(m + 160, f.trapno);
    put(m + 168, f.saved_mask.0);
    put(m + 176, f.cr2);
    put(m + 184, fpstate);
    put(OFF_SIGMASK, f.saved_mask.0);
    b[OFF_INFO as usize..(OFF_INFO + 128) as usize].copy_from_slice(&f.info.to_bytes());
    mm.copy_out(frame, &b)?;

    let mut r = *regs;
    r.rdi = u64::from(f.info.signo);
    r.rsi = frame + OFF_INFO;
    r.rdx = frame + OFF_UC;
    r.rax = 0;
    r.rsp = frame;
    r.rip = f.handler;
    // Handlers start with TF and DF clear, as Linux arranges.
    r.rflags &= !(0x100 | 0x400);
    Ok(r)
}

/// What rt_sigreturn restores.
pub struct Restored {
    pub regs: Regs,
    pub mask: SigSet,
    pub altstack: AltStack,
    pub fpu: Option<Vec<u8>>,
}

/// Reads the frame that rt_sigreturn finds at `rsp - 8`.
pub fn restore(mm: &MemoryManager, current: &Regs) -> Result<Restored, Errno> {
    let frame = current.rsp.checked_sub(8).ok_or(Errno::EFAULT)?;
    let mut b = vec![0u8; FRAME_SIZE as usize];
    mm.copy_in(frame, &mut b)?;
    let get = |off: u64| {
        u64::from_le_bytes(b[off as usize..off as usize + 8].try_into().unwrap_or([0; 8]))
    };
    let m = OFF_MCONTEXT;
    let g = |i: u64| get(m + 8 * i);
    let mut r = *current;
    r.r8 = g(0);
    r.r9 = g(1);
    r.r10 = g(2);
    r.r11 = g(3);
    r.r12 = g(4);
    r.r13 = g(5);
    r.r14 = g(6);
    r.r15 = g(7);
    r.rdi = g(8);
    r.rsi = g(9);
    r.rbp = g(10);
    r.rbx = g(11);
    r.rdx = g(12);
    r.rax = g(13);
    r.rcx = g(14);
    r.rsp = g(15);
    r.rip = g(16);
    r.rflags = (current.rflags & !FIX_EFLAGS) | (g(17) & FIX_EFLAGS);
    let fpstate = get(m + 184);
    let fpu = if fpstate != 0 {
        let mut buf = vec![0u8; XSAVE_BYTES];
        mm.copy_in(fpstate, &mut buf)?;
        Some(buf)
    } else {
        None
    };
    let altstack = AltStack {
        sp: get(OFF_STACK),
        flags: get(OFF_STACK + 8) as u32 as i32,
        size: get(OFF_STACK + 16),
    };
    Ok(Restored { regs: r, mask: SigSet(get(OFF_SIGMASK)).blockable(), altstack, fpu })
}
