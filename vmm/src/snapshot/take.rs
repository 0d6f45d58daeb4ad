//! Taking a snapshot of a running machine, on the VMM's event-loop thread (where devices
//! run, so none of them moves while it is read), once every vCPU is parked by a pause.

use std::sync::{Arc, Mutex};

use event_manager::{EventOps, Events, MutEventSubscriber};
use kvm_ioctls::{VcpuFd, VmFd};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::eventfd::EventFd;

use super::params::{CreateParams, SnapshotType};
use super::state::MachineState;
use super::{SnapshotError, format, memory, vcpu, vm};
use crate::control::{MachineControl, SnapshotRequest};
use crate::devices::{i8042::I8042, serial::SerialDevice};
use crate::memory::GuestMem;
use crate::resources::VmResources;
use crate::virtio_mmio::MmioTransport;

fn lock<T: ?Sized>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Everything of a machine a snapshot reads.
pub struct Snapshotter {
    pub vm: VmFd,
    pub mem: GuestMem,
    pub memory_bytes: u64,
    pub vcpus: Vec<Arc<Mutex<VcpuFd>>>,
    /// The CPUID each vCPU was given.
    pub cpuids: Vec<Vec<kvm_bindings::kvm_cpuid_entry2>>,
    /// The MSRs KVM can save for a guest.
    pub msr_indices: Vec<u32>,
    pub transports: Vec<Arc<Mutex<MmioTransport>>>,
    pub serial: Arc<Mutex<SerialDevice>>,
    pub keyboard: Arc<Mutex<I8042>>,
    /// What the machine was built from; `None` for machines that cannot be snapshotted
    /// (tiny programs without interrupt controllers).
    pub resources: Option<VmResources>,
    /// KVM logs the pages vCPUs write, and devices record theirs: Diff snapshots can be taken.
    pub track_dirty_pages: bool,
}

impl Snapshotter {
    /// Writes the machine's state and memory; the machine must be paused.
    pub fn create(&self, p: &CreateParams, paused: bool) -> Result<(), SnapshotError> {
        if !paused {
            return Err(SnapshotError::Invalid(
                "pause the microVM first (PATCH /vm {\"state\": \"Paused\"})".into(),
            ));
        }
        let Some(resources) = self.resources.clone() else {
            return Err(SnapshotError::Invalid("only a Linux machine can be snapshotted".into()));
        };
        let diff = p.snapshot_type == SnapshotType::Diff;
        if diff && !self.track_dirty_pages {
            return Err(SnapshotError::Invalid(
                "a Diff snapshot needs dirty page tracking: machine-config track_dirty_pages, or \
                 enable_diff_snapshots when loading a snapshot"
                    .into(),
            ));
        }
        if diff && !resources.fs.is_empty() {
            return Err(SnapshotError::Invalid(
                "a machine with a shared directory takes Full snapshots only: its vhost-user \
                 daemon writes guest memory where the VMM cannot see"
                    .into(),
            ));
        }
        let started = std::time::Instant::now();
        // What was written since the last snapshot (or the start); the record starts afresh.
        let dirty = if self.track_dirty_pages { Some(self.dirty_pages()?) } else { None };
        // Devices run on this thread: none has a request in flight; disks are flushed.
        for t in &self.transports {
            lock(t).quiesce().map_err(|e| SnapshotError::Io(format!("flushing a disk: {e}")))?;
        }
        let vm = vm::save(&self.vm)?;
        let vcpus = self
            .vcpus
            .iter()
            .zip(&self.cpuids)
            .map(|(v, cpuid)| vcpu::save(&lock(v), cpuid, &self.msr_indices))
            .collect::<Result<Vec<_>, _>>()?;
        let devices = self.transports.iter().map(|t| lock(t).state()).collect();
        let state = MachineState {
            resources,
            memory_bytes: self.memory_bytes,
            diff,
            vm,
            vcpus,
            devices,
            serial: lock(&self.serial).state(),
            keyboard: lock(&self.keyboard).state(),
        };
        let written = match (&dirty, diff) {
            (Some(pages), true) => {
                memory::write_pages(&self.mem, self.memory_bytes, &p.mem_file_path, pages)?
            }
            _ => memory::write(&self.mem, self.memory_bytes, &p.mem_file_path)?,
        };
        format::write(&p.snapshot_path, &state)?;
        tracing::info!(
            "{} snapshot {}: {} KiB of memory written, in {} ms",
            if diff { "Diff" } else { "Full" },
            p.snapshot_path.display(),
            written >> 10,
            started.elapsed().as_millis()
        );
        Ok(())
    }

    /// The guest pages (address >> 12) written since the last call: KVM's log of every
    /// memory slot (read and cleared) and the devices' record.
    fn dirty_pages(&self) -> Result<std::collections::BTreeSet<u64>, SnapshotError> {
        use vm_memory::{Address, GuestMemoryBackend, GuestMemoryRegion};
        let mut pages = virtio_devices::dirty::take();
        for (slot, region) in self.mem.iter().enumerate() {
            let bitmap = self
                .vm
                .get_dirty_log(slot as u32, region.len() as usize)
                .map_err(SnapshotError::kvm("KVM_GET_DIRTY_LOG"))?;
            let base = region.start_addr().raw_value() >> 12;
            for (i, word) in bitmap.iter().enumerate() {
                let mut w = *word;
                while w != 0 {
                    let bit = u64::from(w.trailing_zeros());
                    pages.insert(base + i as u64 * 64 + bit);
                    w &= w - 1;
                }
            }
        }
        Ok(pages)
    }
}

/// Serves the snapshot requests the API hands to [`MachineControl`], on the event loop.
pub struct SnapshotWorker {
    pub wake: EventFd,
    pub requests: std::sync::mpsc::Receiver<SnapshotRequest>,
    pub snapshotter: Snapshotter,
    pub control: Arc<MachineControl>,
}

impl MutEventSubscriber for SnapshotWorker {
    fn process(&mut self, _events: Events, _ops: &mut EventOps) {
        let _ = self.wake.read();
        while let Ok((params, reply)) = self.requests.try_recv() {
            let paused = self.control.pause.is_paused();
            let done = self.snapshotter.create(&params, paused).map_err(|e| e.to_string());
            if let Err(e) = &done {
                tracing::warn!("snapshot {}: {e}", params.snapshot_path.display());
            }
            let _ = reply.send(done);
        }
    }

    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::new(&self.wake, EventSet::IN)) {
            tracing::warn!("watching snapshot requests: {e:?}");
        }
    }
}
