//! The vDSO: a small ELF shared object mapped into every process (announced with
//! AT_SYSINFO_EHDR) whose clock_gettime, gettimeofday, time and getcpu answer from a data page
//! the Sentry keeps current, so the commonest syscalls of many programs never leave the guest
//! (each exit costs tens of microseconds on nested hosts).
//!
//! The image is built from C (vdso/vdso.c) with a linker script by build.rs, not generated
//! here: glibc and musl look the functions up through the dynamic symbol table with symbol
//! versions (LINUX_2.6), hash tables and all, and the system linker produces exactly that,
//! checkable with the usual tools, from forty lines of code the guest runs.
//!
//! Guest safety: the image is mapped private (a write after mprotect gets the writer its own
//! copy, as on Linux); the data page is one frame mapped read-only into every process of the
//! sandbox, which mprotect refuses to make writable (EACCES, as on Linux), so no process can
//! change it for another. A process that unmaps or breaks either only loses its own fast path.

pub mod timekeeper;
pub mod vvar;

use std::sync::Arc;

use crate::abi::Errno;
use crate::mm::address_space::{MapRequest, MemoryManager};
use crate::mm::mappable::MemObject;
use crate::mm::vma::{Prot, VmaName};
use crate::mm::{PAGE_SIZE, Physical, page_up};
use crate::platform::kvm::tsc::{CpuNumber, TimeProbe};
use vvar::{VCLOCK_TSC, VGETCPU_RDTSCP, Vvar, VvarMapping};

/// The vDSO image, built by build.rs.
pub static IMAGE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/vdso.so"));

/// A sandbox's vDSO: the image's pages and the data page, shared by all its processes.
pub struct Vdso {
    image: Arc<MemObject>,
    pages: u64,
    vvar: Arc<Vvar>,
    cpu_number: CpuNumber,
}

impl Vdso {
    /// Sets up the pages and, if the probe found the TSC usable, the clock updates.
    pub fn new(phys: &Arc<Physical>, probe: TimeProbe, ncpus: u32) -> Result<Arc<Vdso>, Errno> {
        let image = Arc::new(MemObject::new(phys.clone(), 0));
        image.write(0, IMAGE)?;
        let pages = page_up(IMAGE.len() as u64).ok_or(Errno::ENOMEM)? / PAGE_SIZE;
        let vvar = Vvar::new(phys.clone(), ncpus)?;
        if probe.tsc_usable && probe.tsc_khz > 0 {
            let tk = timekeeper::Timekeeper::start(&vvar, probe.tsc_khz);
            vvar.set_clock_mode(VCLOCK_TSC);
            if let Err(e) = timekeeper::spawn(&vvar, tk) {
                tracing::warn!("no clock updates for the vDSO ({e}): clock reads use syscalls");
                vvar.set_clock_mode(0);
            }
        }
        if probe.cpu_number != CpuNumber::Unknown {
            vvar.set_getcpu_mode(VGETCPU_RDTSCP);
        }
        Ok(Arc::new(Vdso { image, pages, vvar, cpu_number: probe.cpu_number }))
    }

    /// Maps the data page and the image above it into `mm`; returns the image's address
    /// (AT_SYSINFO_EHDR).
    pub fn map(&self, mm: &MemoryManager) -> Result<u64, Errno> {
        let span = (1 + self.pages) * PAGE_SIZE;
        let base = mm.mmap(MapRequest::anon(span, Prot::NONE))?;
        let mut data = MapRequest::anon(PAGE_SIZE, Prot::R);
        data.addr = base;
        data.fixed = true;
        // Private as on Linux (`r--p`): never writable, so never copied either.
        data.may_write = false;
        data.backing = Some(Arc::new(VvarMapping(self.vvar.clone())));
        data.name = VmaName::Vvar;
        mm.mmap(data)?;
        let mut text = MapRequest::anon(self.pages * PAGE_SIZE, Prot::RX);
        text.addr = base + PAGE_SIZE;
        text.fixed = true;
        text.backing = Some(self.image.clone());
        text.name = VmaName::Vdso;
        mm.mmap(text)
    }

    /// Makes every clock read a syscall (a vCPU whose TSC is not the host's joined).
    pub fn disable_clock(&self) {
        if self.vvar.clock_mode() == VCLOCK_TSC {
            tracing::warn!("a vCPU's TSC is not the host's: clock reads go back to syscalls");
        }
        self.vvar.set_clock_mode(0);
    }

    /// What getcpu's CPU number means in this sandbox.
    pub fn cpu_number(&self) -> CpuNumber {
        self.cpu_number
    }
}

#[cfg(test)]
mod tests {
    use super::IMAGE;
    use crate::loader::elf::{self, ET_DYN, PT_LOAD};

    const PT_DYNAMIC: u32 = 2;
    const DT_NEEDED: u64 = 1;
    const DT_HASH: u64 = 4;
    const DT_STRTAB: u64 = 5;
    const DT_SYMTAB: u64 = 6;
    const DT_RELA: u64 = 7;
    const DT_REL: u64 = 17;
    const DT_TEXTREL: u64 = 22;
    const DT_GNU_HASH: u64 = 0x6fff_fef5;
    const DT_VERSYM: u64 = 0x6fff_fff0;
    const DT_VERDEF: u64 = 0x6fff_fffc;

    fn u64_at(off: u64) -> u64 {
        let o = off as usize;
        u64::from_le_bytes(IMAGE[o..o + 8].try_into().unwrap())
    }

    /// What glibc and musl need to use the image as it is mapped: one segment at its own
    /// addresses (nothing relocates the vDSO), hash tables, versioned dynamic symbols.
    #[test]
    fn the_image_is_a_shared_object_glibc_and_musl_can_use_unrelocated() {
        let h = elf::parse_header(IMAGE).unwrap();
        assert_eq!(h.kind, ET_DYN);
        let phdrs = elf::parse_phdrs(&IMAGE[h.phoff as usize..], h.phnum as usize).unwrap();
        let loads: Vec<_> = phdrs.iter().filter(|p| p.kind == PT_LOAD).collect();
        assert_eq!(loads.len(), 1);
        assert_eq!((loads[0].offset, loads[0].vaddr), (0, 0));
        assert_eq!(loads[0].flags & elf::PF_W, 0, "the code is not writable");
        assert!(loads[0].filesz as usize <= IMAGE.len() && loads[0].memsz == loads[0].filesz);
        let dynamic = phdrs.iter().find(|p| p.kind == PT_DYNAMIC).expect("PT_DYNAMIC");
        let mut tags = std::collections::HashMap::new();
        for i in 0..dynamic.filesz / 16 {
            let tag = u64_at(dynamic.offset + 16 * i);
            if tag == 0 {
                break;
            }
            tags.insert(tag, u64_at(dynamic.offset + 16 * i + 8));
        }
        for t in [DT_HASH, DT_GNU_HASH, DT_SYMTAB, DT_STRTAB, DT_VERSYM, DT_VERDEF] {
            assert!(tags.contains_key(&t), "dynamic tag {t:#x} missing");
        }
        for t in [DT_NEEDED, DT_RELA, DT_REL, DT_TEXTREL] {
            assert!(!tags.contains_key(&t), "dynamic tag {t:#x} present");
        }
        let strtab = &IMAGE[tags[&DT_STRTAB] as usize..];
        let has = |s: &str| {
            strtab.windows(s.len() + 1).any(|w| w[..s.len()] == *s.as_bytes() && w[s.len()] == 0)
        };
        for name in [
            "__vdso_clock_gettime",
            "__vdso_gettimeofday",
            "__vdso_time",
            "__vdso_getcpu",
            "LINUX_2.6",
            "linux-vdso.so.1",
        ] {
            assert!(has(name), "{name} missing from the dynamic strings");
        }
    }
}
