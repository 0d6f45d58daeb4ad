//! Guest memory: anonymous mappings from vm-memory, one KVM memory slot per RAM range.

use kvm_ioctls::VmFd;
use vm_memory::{Address, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

use crate::VmmError;
use crate::layout;

pub use virtio_devices::GuestMem;

/// Allocates `size` bytes of guest RAM laid out by [`layout::ram_ranges`].
pub fn create(size: u64) -> Result<GuestMem, VmmError> {
    if size < (1 << 20) || !size.is_multiple_of(4096) {
        return Err(VmmError::Config(format!(
            "guest memory must be a multiple of 4 KiB and at least 1 MiB (got {size} bytes)"
        )));
    }
    let ranges: Vec<(GuestAddress, usize)> = layout::ram_ranges(size)
        .into_iter()
        .map(|(start, len)| (GuestAddress(start), len as usize))
        .collect();
    GuestMemoryMmap::from_ranges(&ranges).map_err(|e| VmmError::Memory(e.to_string()))
}

/// Makes every region of `mem` guest-physical memory of `vm`.
pub fn register(vm: &VmFd, mem: &GuestMem) -> Result<(), VmmError> {
    for (slot, region) in mem.iter().enumerate() {
        let host = mem
            .get_host_address(region.start_addr())
            .map_err(|e| VmmError::Memory(e.to_string()))?;
        let r = kvm_bindings::kvm_userspace_memory_region {
            slot: slot as u32,
            guest_phys_addr: region.start_addr().raw_value(),
            memory_size: region.len(),
            userspace_addr: host as u64,
            flags: 0,
        };
        // SAFETY: the region stays mapped as long as `mem`, which the VM keeps alive.
        unsafe { vm.set_user_memory_region(r) }?;
    }
    Ok(())
}
