//! The sandbox's guest-physical memory: one sparse memfd mapped into the Sentry and registered
//! with KVM as a single memslot. Pages cost host memory only once something touches them.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

use crate::mm::{PAGE_SIZE, PhysAddr};

/// Errors setting up or managing guest-physical memory.
#[derive(Debug, thiserror::Error)]
pub enum PhysError {
    #[error("memfd_create: {0}")]
    Memfd(std::io::Error),
    #[error("sizing guest memory to {size} bytes: {source}")]
    Truncate { size: u64, source: std::io::Error },
    #[error("mapping guest memory: {0}")]
    Mmap(std::io::Error),
    #[error("releasing guest frames: {0}")]
    Release(std::io::Error),
}

/// Guest-physical memory, starting at guest-physical address 0.
pub struct PhysMemory {
    memfd: OwnedFd,
    base: NonNull<u8>,
    size: u64,
}

// SAFETY: the mapping is plain shared memory; all accesses go through raw-pointer copies that
// tolerate concurrent writers (the guest writes this memory while the Sentry reads it).
unsafe impl Send for PhysMemory {}
// SAFETY: as above; no interior state besides the mapping itself.
unsafe impl Sync for PhysMemory {}

impl PhysMemory {
    /// Reserves `size` bytes (rounded up to pages). Nothing is committed until touched.
    pub fn new(size: u64) -> Result<Self, PhysError> {
        let size = size.div_ceil(PAGE_SIZE) * PAGE_SIZE;
        // SAFETY: the name is a valid NUL-terminated string; the returned fd is checked.
        let fd = unsafe { libc::memfd_create(c"ringfence-sentry".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(PhysError::Memfd(std::io::Error::last_os_error()));
        }
        // SAFETY: `fd` was just created and is owned by nobody else.
        let memfd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: plain ftruncate on our own fd.
        if unsafe { libc::ftruncate(memfd.as_raw_fd(), size as libc::off_t) } != 0 {
            return Err(PhysError::Truncate { size, source: std::io::Error::last_os_error() });
        }
        // SAFETY: a fresh shared mapping of the whole memfd; the result is checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_NORESERVE,
                memfd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(PhysError::Mmap(std::io::Error::last_os_error()));
        }
        let base = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| {
            PhysError::Mmap(std::io::Error::other("mmap returned a null mapping"))
        })?;
        Ok(Self { memfd, base, size })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The memfd itself (stub processes map frames from it).
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.memfd.as_fd()
    }

    /// Host address of guest-physical address 0 (for the KVM memslot).
    pub fn host_base(&self) -> u64 {
        self.base.as_ptr() as u64
    }

    /// Host pointer to `len` bytes at `addr`, or None when the range is outside memory.
    pub fn ptr(&self, addr: PhysAddr, len: u64) -> Option<*mut u8> {
        let end = addr.0.checked_add(len)?;
        if end > self.size {
            return None;
        }
        // SAFETY: `addr + len` is within the mapping, checked above.
        Some(unsafe { self.base.as_ptr().add(addr.0 as usize) })
    }

    /// Reads a little-endian u64 (page-table entries). Panics only on a Sentry bug (an address
    /// outside memory), never on guest input: callers pass frames they allocated.
    pub fn read_u64(&self, addr: PhysAddr) -> u64 {
        let p = self.ptr(addr, 8).expect("physical address within guest memory");
        // SAFETY: in bounds (checked) and 8-aligned for page-table entries; volatile because
        // KVM may update accessed/dirty bits concurrently.
        unsafe { std::ptr::read_volatile(p.cast::<u64>()) }
    }

    pub fn write_u64(&self, addr: PhysAddr, value: u64) {
        let p = self.ptr(addr, 8).expect("physical address within guest memory");
        // SAFETY: in bounds (checked) and aligned; see `read_u64`.
        unsafe { std::ptr::write_volatile(p.cast::<u64>(), value) }
    }

    /// Copies `data` to `addr`. The range must be inside memory.
    pub fn write(&self, addr: PhysAddr, data: &[u8]) {
        let p = self.ptr(addr, data.len() as u64).expect("physical range within guest memory");
        // SAFETY: destination range checked; source is a Rust slice that cannot overlap guest
        // memory handed out by this type.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len()) }
    }

    /// Copies from `addr` into `out`. The range must be inside memory.
    pub fn read(&self, addr: PhysAddr, out: &mut [u8]) {
        let p = self.ptr(addr, out.len() as u64).expect("physical range within guest memory");
        // SAFETY: source range checked; destination is an exclusive Rust slice.
        unsafe { std::ptr::copy_nonoverlapping(p, out.as_mut_ptr(), out.len()) }
    }

    /// Copies one page from `src` to `dst`.
    pub fn copy_page(&self, src: PhysAddr, dst: PhysAddr) {
        let s = self.ptr(src, PAGE_SIZE).expect("source frame within guest memory");
        let d = self.ptr(dst, PAGE_SIZE).expect("destination frame within guest memory");
        // SAFETY: both ranges are whole frames inside the mapping; distinct frames never overlap.
        unsafe { std::ptr::copy_nonoverlapping(s, d, PAGE_SIZE as usize) }
    }

    /// Fills `len` bytes at `addr` with zeroes.
    pub fn zero(&self, addr: PhysAddr, len: u64) {
        let p = self.ptr(addr, len).expect("physical range within guest memory");
        // SAFETY: range checked above.
        unsafe { std::ptr::write_bytes(p, 0, len as usize) }
    }

    /// Gives frames back to the host: their contents become zero and every cached guest
    /// translation of them (shadow or EPT entries) is dropped through KVM's MMU notifier.
    pub fn release(&self, addr: PhysAddr, len: u64) -> Result<(), PhysError> {
        // SAFETY: punching a hole in our own memfd; offsets are validated by the kernel.
        let r = unsafe {
            libc::fallocate(
                self.memfd.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                addr.0 as libc::off_t,
                len as libc::off_t,
            )
        };
        if r != 0 {
            return Err(PhysError::Release(std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Drops every cached guest translation of the given frames while keeping their contents:
    /// used when a mapping loses permissions or moves.
    pub fn invalidate_translations(&self, addr: PhysAddr, len: u64) {
        let Some(p) = self.ptr(addr, len) else { return };
        // SAFETY: MADV_DONTNEED on a MAP_SHARED memfd mapping only drops our page-table entries;
        // the pages stay in the memfd, so no data is lost.
        unsafe { libc::madvise(p.cast(), len as usize, libc::MADV_DONTNEED) };
    }
}

impl Drop for PhysMemory {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping created in `new`.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.size as usize) };
    }
}
