//! The Linux 64-bit boot protocol: the zero page (boot params) with the e820 map, the command
//! line, and an initrd placed high below the MMIO gap.

use linux_loader::bootparam::{boot_e820_entry, boot_params, setup_header};
use linux_loader::cmdline::Cmdline;
use vm_memory::{Bytes, GuestAddress};

use crate::VmmError;
use crate::layout;
use crate::memory::GuestMem;

const E820_RAM: u32 = 1;
const E820_RESERVED: u32 = 2;
const KERNEL_BOOT_FLAG_MAGIC: u16 = 0xaa55;
const KERNEL_HDR_MAGIC: u32 = 0x5372_6448; // "HdrS"
const KERNEL_LOADER_OTHER: u8 = 0xff;
/// The command line may not reach into what follows it.
pub const CMDLINE_MAX: usize = 4096;

/// The command line when none is given: the console on the UART, a reset (not a reboot
/// through the BIOS) and no lingering after a panic.
pub const DEFAULT_CMDLINE: &str = "console=ttyS0 reboot=k panic=1";

/// The e820 map of a guest with `size` bytes of RAM: RAM below the EBDA, the legacy hole
/// reserved, RAM from 1 MiB (split around the MMIO gap).
pub fn e820(size: u64) -> Vec<(u64, u64, u32)> {
    let mut map = vec![(0, layout::EBDA_START, E820_RAM)];
    map.push((layout::EBDA_START, layout::LOAD_ADDR - layout::EBDA_START, E820_RESERVED));
    for (start, len) in layout::ram_ranges(size) {
        let (s, l) =
            if start == 0 { (layout::LOAD_ADDR, len - layout::LOAD_ADDR) } else { (start, len) };
        map.push((s, l, E820_RAM));
    }
    map
}

/// Builds a command line, checking it fits.
pub fn cmdline(text: &str) -> Result<Cmdline, VmmError> {
    let mut c = Cmdline::new(CMDLINE_MAX).map_err(|e| VmmError::Config(e.to_string()))?;
    c.insert_str(text).map_err(|e| VmmError::Config(format!("kernel command line: {e}")))?;
    Ok(c)
}

/// Writes the command line at [`layout::CMDLINE_ADDR`]; returns its length with the NUL.
pub fn write_cmdline(mem: &GuestMem, cmdline: &Cmdline) -> Result<usize, VmmError> {
    let text = cmdline.as_cstring().map_err(|e| VmmError::Config(e.to_string()))?;
    let bytes = text.as_bytes_with_nul();
    mem.write_slice(bytes, GuestAddress(layout::CMDLINE_ADDR))
        .map_err(|e| VmmError::Memory(e.to_string()))?;
    Ok(bytes.len())
}

/// Loads `initrd` as high as it fits below the MMIO gap (and the end of RAM), page aligned.
pub fn load_initrd(mem: &GuestMem, size: u64, initrd: &[u8]) -> Result<(u64, u64), VmmError> {
    let top = size.min(layout::MMIO_GAP_START);
    let len = initrd.len() as u64;
    let addr = top
        .checked_sub(len)
        .map(|a| a & !0xfff)
        .filter(|a| *a >= layout::LOAD_ADDR + (16 << 20))
        .ok_or_else(|| {
            VmmError::Config(format!("a {len} byte initrd does not fit in guest memory"))
        })?;
    mem.write_slice(initrd, GuestAddress(addr)).map_err(|e| VmmError::Memory(e.to_string()))?;
    Ok((addr, len))
}

/// Writes the zero page at [`layout::ZERO_PAGE`]; `header` is the bzImage's setup header, if
/// the kernel was one. Returns the zero page's address (RSI at the 64-bit entry).
pub fn write_zero_page(
    mem: &GuestMem,
    size: u64,
    header: Option<setup_header>,
    cmdline: &Cmdline,
    initrd: Option<(u64, u64)>,
    rsdp: Option<u64>,
) -> Result<u64, VmmError> {
    let err = |e: &dyn std::fmt::Display| VmmError::Memory(e.to_string());
    let len = write_cmdline(mem, cmdline)?;
    let mut p = boot_params::default();
    if let Some(h) = header {
        p.hdr = h;
    }
    p.hdr.type_of_loader = KERNEL_LOADER_OTHER;
    p.hdr.boot_flag = KERNEL_BOOT_FLAG_MAGIC;
    p.hdr.header = KERNEL_HDR_MAGIC;
    p.hdr.cmd_line_ptr = layout::CMDLINE_ADDR as u32;
    p.hdr.cmdline_size = len as u32;
    p.acpi_rsdp_addr = rsdp.unwrap_or(0);
    p.hdr.kernel_alignment = 0x0100_0000;
    if let Some((addr, len)) = initrd {
        p.hdr.ramdisk_image = addr as u32;
        p.hdr.ramdisk_size = len as u32;
    }
    let map = e820(size);
    if map.len() > p.e820_table.len() {
        return Err(VmmError::Config("too many e820 entries".into()));
    }
    for (i, (addr, size, kind)) in map.iter().enumerate() {
        p.e820_table[i] = boot_e820_entry { addr: *addr, size: *size, r#type: *kind };
    }
    p.e820_entries = map.len() as u8;
    mem.write_obj(p, GuestAddress(layout::ZERO_PAGE)).map_err(|e| err(&e))?;
    Ok(layout::ZERO_PAGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_e820_map_covers_ram_and_skips_the_holes() {
        let size = 4u64 << 30;
        let map = e820(size);
        let ram: u64 = map.iter().filter(|e| e.2 == E820_RAM).map(|e| e.1).sum();
        assert_eq!(ram, size - (layout::LOAD_ADDR - layout::EBDA_START));
        for w in map.windows(2) {
            assert!(w[0].0 + w[0].1 <= w[1].0, "{map:x?}");
        }
        assert!(
            map.iter().all(|e| e.0 + e.1 <= layout::MMIO_GAP_START || e.0 >= layout::MMIO_GAP_END)
        );
    }

    #[test]
    fn zero_page_command_line_and_initrd() {
        let size = 64 << 20;
        let mem = crate::memory::create(size).unwrap();
        let c = cmdline("console=ttyS0 panic=1").unwrap();
        let initrd = load_initrd(&mem, size, &[7u8; 5000]).unwrap();
        assert_eq!(initrd.0 % 4096, 0);
        assert!(initrd.0 + initrd.1 <= size);
        let at = write_zero_page(&mem, size, None, &c, Some(initrd), Some(0xe0000)).unwrap();
        let p: boot_params = mem.read_obj(GuestAddress(at)).unwrap();
        assert_eq!({ p.hdr.boot_flag }, KERNEL_BOOT_FLAG_MAGIC);
        assert_eq!({ p.hdr.ramdisk_size }, 5000);
        assert_eq!({ p.acpi_rsdp_addr }, 0xe0000);
        let mut text = vec![0u8; 21];
        mem.read_slice(&mut text, GuestAddress(u64::from(p.hdr.cmd_line_ptr))).unwrap();
        assert_eq!(&text, b"console=ttyS0 panic=1");
        assert!(cmdline(&"x".repeat(CMDLINE_MAX + 1)).is_err());
        assert!(load_initrd(&mem, size, &vec![0u8; 60 << 20]).is_err());
    }
}
