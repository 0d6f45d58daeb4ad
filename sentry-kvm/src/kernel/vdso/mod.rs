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
