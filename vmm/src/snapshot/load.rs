//! What a restored machine starts from: the checked state, its resources with the clone's
//! overrides applied, and guest memory mapped from the memory file.

use super::params::LoadParams;
use super::state::MachineState;
use super::{SnapshotError, format, memory};
use crate::memory::GuestMem;
use crate::resources::VmResources;

pub struct Restore {
    pub state: MachineState,
    pub memory: GuestMem,
    /// Run the guest at once (or stay paused until PATCH /vm Resumed).
    pub resume: bool,
}

impl Restore {
    /// Reads and checks the snapshot `params` names, applies its overrides, and maps its
    /// memory. Nothing is started; a refusal leaves nothing behind.
    pub fn open(params: &LoadParams) -> Result<Restore, SnapshotError> {
        let memory_file = params.memory_file().map_err(SnapshotError::Invalid)?;
        let mut state = format::read(&params.snapshot_path)?;
        // (A Diff snapshot's state is whole; its memory file must have been laid over its
        // base first, `ringfence vm rebase-memory`, as with Firecracker's snapshot-editor.)
        apply_overrides(&mut state.resources, params)?;
        if params.enable_diff_snapshots && !state.resources.fs.is_empty() {
            return Err(SnapshotError::Invalid(
                "enable_diff_snapshots: a machine with a shared directory takes Full snapshots \
                 only"
                    .into(),
            ));
        }
        // Pages written from now on are recorded for Diff snapshots only if asked.
        state.resources.machine_config.track_dirty_pages = params.enable_diff_snapshots;
        check_shape(&state)?;
        let kvm = kvm_ioctls::Kvm::new().map_err(|e| SnapshotError::Kvm(e.to_string()))?;
        let supported = kvm
            .get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
            .map_err(SnapshotError::kvm("KVM_GET_SUPPORTED_CPUID"))?;
        for v in &state.vcpus {
            super::cpu_features::check(&v.cpuid, supported.as_slice())?;
        }
        // vhost-user daemons map guest memory themselves: it must be shared with them.
        let memory = if state.resources.fs.is_empty() {
            memory::map_private(&memory_file, state.memory_bytes)?
        } else {
            memory::copy_shared(&memory_file, state.memory_bytes)?
        };
        Ok(Restore { state, memory, resume: params.resume_vm })
    }
}

/// The clone's own taps, vsock socket and daemons in place of the snapshot's.
fn apply_overrides(r: &mut VmResources, p: &LoadParams) -> Result<(), SnapshotError> {
    for o in &p.network_overrides {
        let iface = r.network_interfaces.iter_mut().find(|i| i.iface_id == o.iface_id).ok_or_else(
            || {
                SnapshotError::Invalid(format!(
                    "the snapshot has no network interface {:?}",
                    o.iface_id
                ))
            },
        )?;
        iface.host_dev_name = o.host_dev_name.clone();
    }
    if let Some(v) = &p.vsock_override {
        let vsock = r.vsock.as_mut().ok_or_else(|| {
            SnapshotError::Invalid("vsock_override: the snapshot has no vsock device".into())
        })?;
        vsock.uds_path = v.uds_path.clone();
    }
    for o in &p.fs_overrides {
        let fs = r.fs.iter_mut().find(|f| f.fs_id == o.fs_id).ok_or_else(|| {
            SnapshotError::Invalid(format!("the snapshot has no shared directory {:?}", o.fs_id))
        })?;
        fs.socket = o.socket.clone();
    }
    Ok(())
}

/// A state whose parts do not fit each other was not written by this VMM.
fn check_shape(s: &MachineState) -> Result<(), SnapshotError> {
    let m = &s.resources.machine_config;
    let bad = |m: String| Err(SnapshotError::Corrupt(m));
    if s.memory_bytes != m.mem_size_mib << 20 {
        return bad(format!(
            "{} bytes of memory for a {} MiB machine",
            s.memory_bytes, m.mem_size_mib
        ));
    }
    if s.vcpus.len() != usize::from(m.vcpu_count) || s.vcpus.is_empty() {
        return bad(format!("{} vCPU states for {} vCPUs", s.vcpus.len(), m.vcpu_count));
    }
    let devices = s.resources.drives.len()
        + s.resources.network_interfaces.len()
        + usize::from(s.resources.vsock.is_some())
        + usize::from(s.resources.entropy.is_some())
        + s.resources.fs.len();
    if s.devices.len() != devices {
        return bad(format!("{} device states for {devices} devices", s.devices.len()));
    }
    if s.resources.boot_source.is_none() {
        return bad("no boot source".into());
    }
    Ok(())
}
