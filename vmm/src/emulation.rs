//! KVM_EXIT_INTERNAL_ERROR: what KVM's instruction emulator gave up on, told precisely, and the
//! instructions the VMM finishes itself. On hosts whose KVM emulates guest CPL0 (the development
//! hosts, docs/kvm-host-notes.md) the emulator cannot run `int3` (Linux executes one on purpose
//! in its alternatives self-test) nor `fwait` (after saving the FPU). The VMM does what the CPU
//! would; on hosts with VT-x/AMD-V these instructions never reach this path.

use kvm_bindings::{
    KVM_INTERNAL_ERROR_EMULATION, KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES,
};
use kvm_ioctls::VcpuFd;

const INT3: u8 = 0xcc;
const FWAIT: u8 = 0x9b;
const BP_VECTOR: u8 = 3;
const NM_VECTOR: u8 = 7;
const MF_VECTOR: u8 = 16;
const CR0_MP: u64 = 1 << 1;
const CR0_TS: u64 = 1 << 3;
/// x87 status word: an unmasked exception is pending.
const FSW_ES: u16 = 1 << 7;

/// The failed instruction as KVM reported it.
pub struct Failure {
    pub suberror: u32,
    pub rip: Option<u64>,
    /// The instruction's bytes, when KVM gave them.
    pub bytes: Vec<u8>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "suberror {}", self.suberror)?;
        if let Some(rip) = self.rip {
            write!(f, " at rip {rip:#x}")?;
        }
        if !self.bytes.is_empty() {
            let hex: Vec<String> = self.bytes.iter().map(|b| format!("{b:02x}")).collect();
            write!(f, ", instruction bytes {}", hex.join(" "))?;
        }
        Ok(())
    }
}

/// Reads the exit's details from the vCPU's run structure.
pub fn failure(vcpu: &mut VcpuFd) -> Failure {
    let rip = vcpu.get_regs().ok().map(|r| r.rip);
    let run = vcpu.get_kvm_run();
    // SAFETY: the exit reason was KVM_EXIT_INTERNAL_ERROR, so `internal` (and, for an
    // emulation failure, its extended form `emulation_failure`) is the union's live member;
    // both are plain integers.
    let (suberror, bytes) = unsafe {
        let internal = run.__bindgen_anon_1.internal;
        let mut bytes = Vec::new();
        let e = run.__bindgen_anon_1.emulation_failure;
        if internal.suberror == KVM_INTERNAL_ERROR_EMULATION
            && internal.ndata >= 3
            && e.flags & u64::from(KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES) != 0
        {
            let insn = e.__bindgen_anon_1.__bindgen_anon_1;
            let n = usize::from(insn.insn_size).min(insn.insn_bytes.len());
            bytes.extend_from_slice(&insn.insn_bytes[..n]);
        }
        (internal.suberror, bytes)
    };
    Failure { suberror, rip, bytes }
}

/// Finishes an instruction the emulator could not run, when it is one the VMM knows. Returns
/// whether it did.
pub fn finish(vcpu: &VcpuFd, failure: &Failure) -> bool {
    match failure.bytes.first() {
        Some(&INT3) => finish_int3(vcpu),
        Some(&FWAIT) => finish_fwait(vcpu),
        _ => false,
    }
}

/// RIP past `int3` and #BP delivered: a trap, so the handler sees the address after it.
fn finish_int3(vcpu: &VcpuFd) -> bool {
    deliver(vcpu, 1, BP_VECTOR)
}

/// `fwait`: #NM when CR0.TS and CR0.MP are set, #MF when an unmasked x87 exception is
/// pending, otherwise nothing but RIP past it.
fn finish_fwait(vcpu: &VcpuFd) -> bool {
    let (Ok(sregs), Ok(fpu)) = (vcpu.get_sregs(), vcpu.get_fpu()) else {
        return false;
    };
    if sregs.cr0 & (CR0_TS | CR0_MP) == CR0_TS | CR0_MP {
        return deliver(vcpu, 0, NM_VECTOR);
    }
    if fpu.fsw & FSW_ES != 0 {
        return deliver(vcpu, 0, MF_VECTOR);
    }
    skip(vcpu, 1)
}

fn skip(vcpu: &VcpuFd, len: u64) -> bool {
    let Ok(mut regs) = vcpu.get_regs() else {
        return false;
    };
    regs.rip = regs.rip.wrapping_add(len);
    vcpu.set_regs(&regs).is_ok()
}

/// Moves RIP `len` bytes on and injects exception `vector` (no error code).
fn deliver(vcpu: &VcpuFd, len: u64, vector: u8) -> bool {
    let Ok(mut events) = vcpu.get_vcpu_events() else {
        return false;
    };
    if events.exception.injected != 0 || events.exception.pending != 0 {
        return false;
    }
    if len > 0 && !skip(vcpu, len) {
        return false;
    }
    events.exception.injected = 1;
    events.exception.nr = vector;
    events.exception.has_error_code = 0;
    vcpu.set_vcpu_events(&events).is_ok()
}
