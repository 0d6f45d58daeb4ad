//! One vCPU's state, read from KVM while its thread is parked and written into a fresh vCPU
//! of a restored machine: CPUID, registers, special registers, FPU/XSAVE, XCRs, debug
//! registers, local APIC, MSRs (the kvm-clock's among them), MP state and pending events.

use kvm_bindings::{CpuId, Msrs, kvm_msr_entry};
use kvm_ioctls::VcpuFd;

use super::SnapshotError;
use super::state::VcpuState;

/// KVM takes at most this many MSRs per call.
const MSR_CHUNK: usize = 64;

/// Reads every MSR of `indices` that KVM lets this vCPU read (some in KVM's list are not
/// readable on every host; they are left out rather than failing the snapshot).
fn read_msrs(vcpu: &VcpuFd, indices: &[u32]) -> Result<Vec<kvm_msr_entry>, SnapshotError> {
    let mut out = Vec::with_capacity(indices.len());
    for chunk in indices.chunks(MSR_CHUNK) {
        let mut rest = chunk;
        while !rest.is_empty() {
            let entries: Vec<kvm_msr_entry> =
                rest.iter().map(|&index| kvm_msr_entry { index, ..Default::default() }).collect();
            let mut msrs = Msrs::from_entries(&entries)
                .map_err(|e| SnapshotError::Kvm(format!("MSR list: {e:?}")))?;
            let n = vcpu.get_msrs(&mut msrs).map_err(SnapshotError::kvm("KVM_GET_MSRS"))?;
            out.extend_from_slice(&msrs.as_slice()[..n]);
            if n >= rest.len() {
                break;
            }
            tracing::debug!("MSR {:#x} is not readable here; not saved", rest[n]);
            rest = &rest[n + 1..];
        }
    }
    Ok(out)
}

/// The state of a vCPU whose thread is outside KVM_RUN. `cpuid` is what the VMM gave it
/// (some hosts' KVM_GET_CPUID2 answers with the host's own features instead).
pub fn save(
    vcpu: &VcpuFd,
    cpuid: &[kvm_bindings::kvm_cpuid_entry2],
    msr_indices: &[u32],
) -> Result<VcpuState, SnapshotError> {
    Ok(VcpuState {
        cpuid: cpuid.to_vec(),
        mp_state: vcpu.get_mp_state().map_err(SnapshotError::kvm("KVM_GET_MP_STATE"))?,
        regs: vcpu.get_regs().map_err(SnapshotError::kvm("KVM_GET_REGS"))?,
        sregs: vcpu.get_sregs().map_err(SnapshotError::kvm("KVM_GET_SREGS"))?,
        xsave: vcpu.get_xsave().map_err(SnapshotError::kvm("KVM_GET_XSAVE"))?,
        xcrs: vcpu.get_xcrs().map_err(SnapshotError::kvm("KVM_GET_XCRS"))?,
        debug_regs: vcpu.get_debug_regs().map_err(SnapshotError::kvm("KVM_GET_DEBUGREGS"))?,
        lapic: vcpu.get_lapic().map_err(SnapshotError::kvm("KVM_GET_LAPIC"))?,
        msrs: read_msrs(vcpu, msr_indices)?,
        events: vcpu.get_vcpu_events().map_err(SnapshotError::kvm("KVM_GET_VCPU_EVENTS"))?,
        tsc_khz: vcpu.get_tsc_khz().ok(),
    })
}

/// Gives a fresh vCPU the saved state, in the order KVM needs (CPUID first, MSRs after the
/// registers and APIC they depend on, pending events last).
pub fn restore(vcpu: &VcpuFd, s: &VcpuState) -> Result<(), SnapshotError> {
    if let Some(khz) = s.tsc_khz
        && vcpu.get_tsc_khz().ok() != Some(khz)
        && let Err(e) = vcpu.set_tsc_khz(khz)
    {
        // The guest's clocksource copes (kvm-clock), but say why time may drift.
        tracing::warn!("the snapshot's TSC runs at {khz} kHz and this host cannot: {e}");
    }
    let cpuid = CpuId::from_entries(&s.cpuid).map_err(|e| {
        SnapshotError::Corrupt(format!("CPUID of {} entries: {e:?}", s.cpuid.len()))
    })?;
    vcpu.set_cpuid2(&cpuid).map_err(SnapshotError::kvm("KVM_SET_CPUID2"))?;
    vcpu.set_mp_state(s.mp_state).map_err(SnapshotError::kvm("KVM_SET_MP_STATE"))?;
    vcpu.set_regs(&s.regs).map_err(SnapshotError::kvm("KVM_SET_REGS"))?;
    vcpu.set_sregs(&s.sregs).map_err(SnapshotError::kvm("KVM_SET_SREGS"))?;
    // SAFETY: this VMM never asks for dynamically enabled XSAVE features
    // (ARCH_REQ_XCOMP_GUEST_PERM), so KVM's XSAVE size is the 4 KiB legacy buffer given.
    unsafe { vcpu.set_xsave(&s.xsave) }.map_err(SnapshotError::kvm("KVM_SET_XSAVE"))?;
    vcpu.set_xcrs(&s.xcrs).map_err(SnapshotError::kvm("KVM_SET_XCRS"))?;
    vcpu.set_debug_regs(&s.debug_regs).map_err(SnapshotError::kvm("KVM_SET_DEBUGREGS"))?;
    vcpu.set_lapic(&s.lapic).map_err(SnapshotError::kvm("KVM_SET_LAPIC"))?;
    for chunk in s.msrs.chunks(MSR_CHUNK) {
        let msrs = Msrs::from_entries(chunk)
            .map_err(|e| SnapshotError::Corrupt(format!("MSR list: {e:?}")))?;
        let n = vcpu.set_msrs(&msrs).map_err(SnapshotError::kvm("KVM_SET_MSRS"))?;
        if n < chunk.len() {
            return Err(SnapshotError::Incompatible(format!(
                "this host's KVM refuses MSR {:#x} = {:#x} of the snapshot",
                chunk[n].index, chunk[n].data
            )));
        }
    }
    vcpu.set_vcpu_events(&s.events).map_err(SnapshotError::kvm("KVM_SET_VCPU_EVENTS"))?;
    Ok(())
}
