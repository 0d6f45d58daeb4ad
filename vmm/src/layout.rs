//! Where things live in guest-physical memory. RAM starts at 0 and stops below the MMIO gap
//! under 4 GiB (continuing above 4 GiB for larger guests); devices live in the gap.

/// Start of the gap below 4 GiB where no RAM is (device MMIO).
pub const MMIO_GAP_START: u64 = 0xc000_0000;
pub const MMIO_GAP_END: u64 = 1 << 32;
/// virtio-mmio devices, one 4 KiB window each, from here.
pub const VIRTIO_MMIO_START: u64 = 0xd000_0000;
pub const VIRTIO_MMIO_SIZE: u64 = 0x1000;

// The virtio-mmio window lies inside the gap.
const _: () = assert!(VIRTIO_MMIO_START >= MMIO_GAP_START && VIRTIO_MMIO_START < MMIO_GAP_END);

/// Early boot structures (below 1 MiB, where Linux and tiny guests expect them).
pub const GDT_ADDR: u64 = 0x500;
pub const PML4_ADDR: u64 = 0x9000;
pub const PDPT_ADDR: u64 = 0xa000;
/// Page directories for the first [`PD_TABLES`] GiB, one 4 KiB page each from here.
pub const PD_ADDR: u64 = 0xb000;
pub const PD_TABLES: u64 = 4;
/// The first address after the boot structures.
pub const BOOT_TABLES_END: u64 = PD_ADDR + PD_TABLES * 4096;
/// Start of the BIOS area (EBDA and ROMs) below 1 MiB, reserved in the e820 map.
pub const EBDA_START: u64 = 0x9fc00;
/// The Linux zero page (boot params) and the kernel command line.
pub const ZERO_PAGE: u64 = 0x7000;
pub const CMDLINE_ADDR: u64 = 0x20000;
/// The MP table.
pub const MPTABLE_START: u64 = 0x9fc00;
/// The PVH start info and its memory map.
pub const PVH_START_INFO: u64 = 0x6000;
pub const PVH_MEMMAP: u64 = 0x6800;
/// Where the boot stack grows down from.
pub const BOOT_STACK: u64 = 0x8ff0;
/// Kernels and test programs load here.
pub const LOAD_ADDR: u64 = 0x10_0000;

/// The RAM ranges (start, size) of a guest with `size` bytes of memory.
pub fn ram_ranges(size: u64) -> Vec<(u64, u64)> {
    if size <= MMIO_GAP_START {
        vec![(0, size)]
    } else {
        vec![(0, MMIO_GAP_START), (MMIO_GAP_END, size - MMIO_GAP_START)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_never_overlaps_the_device_gap() {
        for size in [1 << 20, 128 << 20, MMIO_GAP_START, 4 << 30, 6 << 30] {
            let ranges = ram_ranges(size);
            assert_eq!(ranges.iter().map(|r| r.1).sum::<u64>(), size);
            for (start, len) in ranges {
                let end = start + len;
                assert!(end <= MMIO_GAP_START || start >= MMIO_GAP_END, "{start:#x}..{end:#x}");
            }
        }
    }
}
