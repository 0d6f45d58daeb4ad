//! Loading what the machine boots: an ELF kernel (entered through its PVH entry point in 32-bit
//! mode when it has the note, else at its ELF entry in 64-bit mode) or a bzImage (64-bit entry).

use std::fs::File;
use std::path::Path;

use linux_loader::bootparam::setup_header;
use linux_loader::loader::KernelLoader;
use linux_loader::loader::bzimage::BzImage;
use linux_loader::loader::elf::{Elf, PvhBootCapability};
use vm_memory::{Bytes, GuestAddress};

use crate::VmmError;
use crate::layout;
use crate::memory::GuestMem;

/// How the boot vCPU starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// 64-bit mode with identity page tables at `rip`.
    Long { rip: u64 },
    /// PVH: 32-bit protected mode, paging off, `ebx` = the start info.
    Pvh { rip: u64, start_info: u64 },
}

const PVH_MAGIC: u32 = 0x336e_c578;
const E820_RAM: u32 = 1;

/// Where the PVH module list goes (one entry: the initrd).
const PVH_MODLIST: u64 = 0x6400;

/// Writes the PVH start info at [`layout::PVH_START_INFO`]: version 1, the memory map
/// (`map`: start, size, e820 type), and the command line, initrd module and RSDP when given.
pub fn write_start_info(
    mem: &GuestMem,
    map: &[(u64, u64, u32)],
    cmdline: Option<u64>,
    initrd: Option<(u64, u64)>,
    rsdp: Option<u64>,
) -> Result<u64, VmmError> {
    let err = |e: vm_memory::GuestMemoryError| VmmError::Memory(e.to_string());
    let mut entries = Vec::new();
    for (start, len, kind) in map {
        entries.extend_from_slice(&start.to_le_bytes());
        entries.extend_from_slice(&len.to_le_bytes());
        entries.extend_from_slice(&kind.to_le_bytes());
        entries.extend_from_slice(&0u32.to_le_bytes());
    }
    mem.write_slice(&entries, GuestAddress(layout::PVH_MEMMAP)).map_err(err)?;
    if let Some((addr, len)) = initrd {
        let mut m = Vec::with_capacity(32);
        for v in [addr, len, 0, 0] {
            m.extend_from_slice(&v.to_le_bytes());
        }
        mem.write_slice(&m, GuestAddress(PVH_MODLIST)).map_err(err)?;
    }
    let mut info = Vec::with_capacity(56);
    for v in [PVH_MAGIC, 1, 0, u32::from(initrd.is_some())] {
        info.extend_from_slice(&v.to_le_bytes());
    }
    let modlist = if initrd.is_some() { PVH_MODLIST } else { 0 };
    for v in [modlist, cmdline.unwrap_or(0), rsdp.unwrap_or(0), layout::PVH_MEMMAP] {
        info.extend_from_slice(&v.to_le_bytes());
    }
    info.extend_from_slice(&(map.len() as u32).to_le_bytes());
    info.extend_from_slice(&0u32.to_le_bytes());
    mem.write_slice(&info, GuestAddress(layout::PVH_START_INFO)).map_err(err)?;
    Ok(layout::PVH_START_INFO)
}

/// Loads the kernel at `path` into `mem` (of `size` bytes of RAM); a bzImage also gives its
/// setup header for the zero page.
pub fn load_kernel(
    mem: &GuestMem,
    path: &Path,
    size: u64,
) -> Result<(Entry, Option<setup_header>), VmmError> {
    let open =
        || File::open(path).map_err(|e| VmmError::Config(format!("{}: {e}", path.display())));
    let high = Some(GuestAddress(layout::LOAD_ADDR));
    match Elf::load(mem, None, &mut open()?, high) {
        Ok(r) => {
            if let PvhBootCapability::PvhEntryPresent(rip) = r.pvh_boot_cap {
                // The start info proper is written once the command line and initrd are in.
                let map: Vec<(u64, u64, u32)> =
                    layout::ram_ranges(size).into_iter().map(|(s, l)| (s, l, E820_RAM)).collect();
                let start_info = write_start_info(mem, &map, None, None, None)?;
                return Ok((Entry::Pvh { rip: rip.0, start_info }, None));
            }
            let ehdr_entry = read_elf_entry(path)?;
            Ok((Entry::Long { rip: ehdr_entry }, None))
        }
        Err(elf_err) => match BzImage::load(mem, None, &mut open()?, high) {
            // The 64-bit entry of a bzImage is 0x200 past where its protected-mode part loads.
            Ok(r) => Ok((Entry::Long { rip: r.kernel_load.0 + 0x200 }, r.setup_header)),
            Err(bz_err) => Err(VmmError::Config(format!(
                "{} is neither an ELF kernel ({elf_err}) nor a bzImage ({bz_err})",
                path.display()
            ))),
        },
    }
}

fn read_elf_entry(path: &Path) -> Result<u64, VmmError> {
    use std::io::Read;
    let mut head = [0u8; 32];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .map_err(|e| VmmError::Config(format!("{}: {e}", path.display())))?;
    let mut entry = [0u8; 8];
    entry.copy_from_slice(&head[24..32]);
    Ok(u64::from_le_bytes(entry))
}
