//! Guest memory from vm-memory, one KVM memory slot per RAM range: anonymous, or backed by a
//! memfd (shareable, the base of snapshots), optionally in 2 MiB huge pages.

use std::fs::File;
use std::os::fd::FromRawFd;

use kvm_ioctls::VmFd;
use vm_memory::mmap::MmapRegionBuilder;
use vm_memory::{
    Address, FileOffset, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion,
    GuestRegionMmap,
};

use crate::VmmError;
use crate::layout;

pub use virtio_devices::GuestMem;

/// What guest RAM is made of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Backing {
    #[default]
    Anonymous,
    /// A memfd in 4 KiB pages.
    Memfd,
    /// A hugetlb memfd in 2 MiB pages, reserved up front (the host must have them free).
    HugePages2M,
}

const HUGE_PAGE: u64 = 2 << 20;
const FREE_HUGE_PAGES: &str = "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages";

/// Allocates `size` bytes of anonymous guest RAM laid out by [`layout::ram_ranges`].
pub fn create(size: u64) -> Result<GuestMem, VmmError> {
    create_with(size, Backing::Anonymous)
}

fn memfd(huge: bool, size: u64) -> Result<File, VmmError> {
    let mut flags = libc::MFD_CLOEXEC;
    if huge {
        flags |= libc::MFD_HUGETLB | libc::MFD_HUGE_2MB;
    }
    // SAFETY: a NUL-terminated name and plain flags; the descriptor is checked.
    let fd = unsafe { libc::memfd_create(c"ringfence-guest".as_ptr(), flags) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return Err(VmmError::Memory(format!("memfd_create: {e}")));
    }
    // SAFETY: the descriptor was just created and is owned by nobody else.
    let file = unsafe { File::from_raw_fd(fd) };
    file.set_len(size).map_err(|e| VmmError::Memory(format!("sizing guest memory: {e}")))?;
    Ok(file)
}

/// Allocates `size` bytes of guest RAM backed as `backing`.
pub fn create_with(size: u64, backing: Backing) -> Result<GuestMem, VmmError> {
    if size < (1 << 20) || !size.is_multiple_of(4096) {
        return Err(VmmError::Config(format!(
            "guest memory must be a multiple of 4 KiB and at least 1 MiB (got {size} bytes)"
        )));
    }
    let ranges = layout::ram_ranges(size);
    let err = |e: &dyn std::fmt::Display| VmmError::Memory(e.to_string());
    match backing {
        Backing::Anonymous => {
            let ranges: Vec<(GuestAddress, usize)> =
                ranges.into_iter().map(|(s, l)| (GuestAddress(s), l as usize)).collect();
            GuestMemoryMmap::from_ranges(&ranges).map_err(|e| err(&e))
        }
        Backing::Memfd | Backing::HugePages2M => {
            let huge = backing == Backing::HugePages2M;
            if huge {
                if !size.is_multiple_of(HUGE_PAGE) {
                    return Err(VmmError::Config(format!(
                        "with 2 MiB huge pages, guest memory must be a multiple of 2 MiB (got {size} bytes)"
                    )));
                }
                let free: u64 = std::fs::read_to_string(FREE_HUGE_PAGES)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(0);
                if free < size / HUGE_PAGE {
                    return Err(VmmError::Memory(format!(
                        "{} MiB of guest memory needs {} free 2 MiB huge pages; the host has {free} \
                         (see /proc/sys/vm/nr_hugepages)",
                        size >> 20,
                        size / HUGE_PAGE
                    )));
                }
            }
            let file = memfd(huge, size)?;
            let mut regions = Vec::new();
            let mut offset = 0;
            for (start, len) in ranges {
                let fo = FileOffset::new(file.try_clone().map_err(|e| err(&e))?, offset);
                // Shared, and without MAP_NORESERVE: huge pages are reserved now or the
                // mapping fails, rather than a guest access faulting later.
                let region = MmapRegionBuilder::new(len as usize)
                    .with_file_offset(fo)
                    .with_mmap_prot(libc::PROT_READ | libc::PROT_WRITE)
                    .with_mmap_flags(libc::MAP_SHARED)
                    .with_hugetlbfs(huge)
                    .build()
                    .map_err(|e| err(&e))?;
                if !huge {
                    // Transparent huge pages where the host allows them for shared memory
                    // (shmem_enabled=advise): a guest then faults its memory in 2 MiB at a
                    // time, as anonymous memory does under THP. Advice only: no error.
                    // SAFETY: advice on a mapping this region owns, with its own bounds.
                    unsafe {
                        libc::madvise(region.as_ptr().cast(), len as usize, libc::MADV_HUGEPAGE)
                    };
                }
                let region = GuestRegionMmap::new(region, GuestAddress(start))
                    .ok_or_else(|| VmmError::Memory("a memory region overflows".into()))?;
                regions.push(region);
                offset += len;
            }
            GuestMemoryMmap::from_regions(regions).map_err(|e| err(&e))
        }
    }
}

/// Makes every region of `mem` guest-physical memory of `vm` (slot i for region i), with
/// KVM logging the pages vCPUs write when `log_dirty`.
pub fn register(vm: &VmFd, mem: &GuestMem, log_dirty: bool) -> Result<(), VmmError> {
    for (slot, region) in mem.iter().enumerate() {
        let host = mem
            .get_host_address(region.start_addr())
            .map_err(|e| VmmError::Memory(e.to_string()))?;
        let r = kvm_bindings::kvm_userspace_memory_region {
            slot: slot as u32,
            guest_phys_addr: region.start_addr().raw_value(),
            memory_size: region.len(),
            userspace_addr: host as u64,
            flags: if log_dirty { kvm_bindings::KVM_MEM_LOG_DIRTY_PAGES } else { 0 },
        };
        // SAFETY: the region stays mapped as long as `mem`, which the VM keeps alive.
        unsafe { vm.set_user_memory_region(r) }?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::Bytes;

    #[test]
    fn every_backing_holds_what_is_written() {
        for backing in [Backing::Anonymous, Backing::Memfd] {
            let mem = create_with(8 << 20, backing).unwrap();
            mem.write_obj(0xdead_beef_u32, GuestAddress(0x7f_fffc)).unwrap();
            assert_eq!(mem.read_obj::<u32>(GuestAddress(0x7f_fffc)).unwrap(), 0xdead_beef);
        }
    }

    #[test]
    fn huge_pages_want_whole_pages_and_say_how_many_are_missing() {
        let e = create_with(3 << 20, Backing::HugePages2M).unwrap_err();
        assert!(e.to_string().contains("multiple of 2 MiB"), "{e}");
        let e = create_with(1 << 40, Backing::HugePages2M).unwrap_err();
        assert!(e.to_string().contains("free 2 MiB huge pages"), "{e}");
    }
}
