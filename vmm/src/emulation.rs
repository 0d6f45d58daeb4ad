//! KVM_EXIT_INTERNAL_ERROR: what KVM's instruction emulator gave up on, told precisely, and the
//! one case the VMM finishes itself. On hosts whose KVM emulates guest CPL0 (the development
//! hosts, docs/kvm-host-notes.md) the emulator cannot run `int3`; Linux executes one on purpose
//! in its alternatives self-test. Delivering the #BP the instruction would have raised is what
//! the CPU does; on hosts with VT-x/AMD-V an `int3` never reaches this path.

use kvm_bindings::{
    KVM_INTERNAL_ERROR_EMULATION, KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES,
};
use kvm_ioctls::VcpuFd;

const INT3: u8 = 0xcc;
const BP_VECTOR: u8 = 3;

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

/// Finishes an `int3` the emulator could not run: RIP past it and #BP delivered, as the CPU
/// would (a trap: the handler sees the address after the instruction). Returns whether it did.
pub fn finish_int3(vcpu: &VcpuFd, failure: &Failure) -> bool {
    if failure.bytes.first() != Some(&INT3) {
        return false;
    }
    let (Ok(mut regs), Ok(mut events)) = (vcpu.get_regs(), vcpu.get_vcpu_events()) else {
        return false;
    };
    if events.exception.injected != 0 || events.exception.pending != 0 {
        return false;
    }
    regs.rip = regs.rip.wrapping_add(1);
    events.exception.injected = 1;
    events.exception.nr = BP_VECTOR;
    events.exception.has_error_code = 0;
    vcpu.set_regs(&regs).is_ok() && vcpu.set_vcpu_events(&events).is_ok()
}
