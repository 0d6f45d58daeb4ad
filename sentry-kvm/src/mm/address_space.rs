//! One process's address space: its areas, its page tables, faults, and copies between the
//! Sentry and application memory.
//!
//! Invariant kept with the page tables: a leaf that is removed, downgraded or pointed at another
//! frame is followed by `Physical::unmap_frames`/`invalidate` of its old frame, which drops every
//! cached translation of it on every vCPU before the frame can be reused.

use crate::sync::{Mutex, MutexGuard};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::abi::Errno;
use crate::mm::mappable::Mappable;
use crate::mm::page_table::{PageTables, Pte};
use crate::mm::vma::{Prot, Vma, VmaName};
use crate::mm::{PAGE_SIZE, PhysAddr, Physical, VirtAddr, page_up};

/// End of user space (exclusive): 4 GiB below Linux's x86-64 limit, which leaves room above
/// for the systrap platform's stub code and pages at the same place in every process.
pub const TASK_SIZE: u64 = 0x7fff_0000_0000;
/// Lowest address mmap hands out or accepts with MAP_FIXED (vm.mmap_min_addr).
pub const MMAP_MIN_ADDR: u64 = 0x10000;
/// mmap allocates top-down from here; the stack lives above.
pub const MMAP_BASE: u64 = TASK_SIZE - 0x1000_0000;
/// Mappings up to this many pages are populated when created; larger ones on demand.
const EAGER_PAGES: u64 = 64;
/// Pages populated after a demand fault.
const FAULT_AROUND: u64 = 16;
/// Pages populated around a read of a file mapping: its frames are the file's cache, shared,
/// so a wider window costs no memory, and each fault it saves is a round trip to the Sentry.
const FILE_FAULT_AROUND: u64 = 64;
/// Processes with at most this many private writable pages are copied eagerly on fork instead
/// of copy-on-write: a page fault costs far more than a 4 KiB copy on nested hosts.
const FORK_EAGER_COPY_PAGES: usize = 1024;
/// How far below a grows-down area an access still extends it.
const STACK_GUARD_GAP: u64 = 256 * PAGE_SIZE;

pub const MAP_SHARED: u32 = 0x01;
pub const MAP_PRIVATE: u32 = 0x02;
pub const MAP_SHARED_VALIDATE: u32 = 0x03;
pub const MAP_TYPE: u32 = 0x0f;
pub const MAP_FIXED: u32 = 0x10;
pub const MAP_ANONYMOUS: u32 = 0x20;
pub const MAP_GROWSDOWN: u32 = 0x100;
pub const MAP_DENYWRITE: u32 = 0x800;
pub const MAP_EXECUTABLE: u32 = 0x1000;
pub const MAP_LOCKED: u32 = 0x2000;
pub const MAP_NORESERVE: u32 = 0x4000;
pub const MAP_POPULATE: u32 = 0x8000;
pub const MAP_NONBLOCK: u32 = 0x10000;
pub const MAP_STACK: u32 = 0x20000;
pub const MAP_HUGETLB: u32 = 0x40000;
pub const MAP_FIXED_NOREPLACE: u32 = 0x100000;

pub const MREMAP_MAYMOVE: u32 = 1;
pub const MREMAP_FIXED: u32 = 2;
pub const MREMAP_DONTUNMAP: u32 = 4;

/// Kind of access that faulted or that a copy needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    Exec,
}

/// Why an access cannot be satisfied: the signal the application gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultError {
    /// No mapping (SIGSEGV, SEGV_MAPERR).
    Unmapped,
    /// Mapping without the needed right (SIGSEGV, SEGV_ACCERR).
    Protection,
    /// Beyond the end of the backing object (SIGBUS).
    Bus,
    /// No memory left (the process is killed).
    OutOfMemory,
}

impl From<FaultError> for Errno {
    fn from(e: FaultError) -> Errno {
        match e {
            FaultError::OutOfMemory => Errno::ENOMEM,
            _ => Errno::EFAULT,
        }
    }
}

/// A request to create a mapping, already validated by the syscall layer.
pub struct MapRequest {
    pub addr: u64,
    pub len: u64,
    pub prot: Prot,
    pub fixed: bool,
    pub noreplace: bool,
    pub shared: bool,
    pub growsdown: bool,
    pub populate: bool,
    pub backing: Option<Arc<dyn Mappable>>,
    pub may_write: bool,
    pub pgoff: u64,
    pub name: VmaName,
}

impl MapRequest {
    pub fn anon(len: u64, prot: Prot) -> Self {
        MapRequest {
            addr: 0,
            len,
            prot,
            fixed: false,
            noreplace: false,
            shared: false,
            growsdown: false,
            populate: false,
            backing: None,
            may_write: true,
            pgoff: 0,
            name: VmaName::None,
        }
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub struct MemoryManager {
    phys: Arc<Physical>,
    kernel_pdpt: PhysAddr,
    id: u64,
    state: Mutex<MmState>,
}

pub struct MmState {
    pt: PageTables,
    vmas: BTreeMap<u64, Vma>,
    pub brk_start: u64,
    pub brk: u64,
    /// Where argv and envp strings were placed by exec (for /proc/self/cmdline, environ).
    pub arg_range: (u64, u64),
    pub env_range: (u64, u64),
    pub auxv: Vec<(u64, u64)>,
}

impl MemoryManager {
    pub fn new(phys: Arc<Physical>, kernel_pdpt: PhysAddr) -> Result<Self, Errno> {
        let pt = PageTables::new(&phys, kernel_pdpt).map_err(|_| Errno::ENOMEM)?;
        Ok(Self {
            phys,
            kernel_pdpt,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            state: Mutex::new(MmState {
                pt,
                vmas: BTreeMap::new(),
                brk_start: 0,
                brk: 0,
                arg_range: (0, 0),
                env_range: (0, 0),
                auxv: Vec::new(),
            }),
        })
    }

    /// A unique identity (futex keys of private mappings).
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn phys(&self) -> &Arc<Physical> {
        &self.phys
    }

    #[track_caller]
    pub fn lock(&self) -> MutexGuard<'_, MmState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The page-table root to load into CR3.
    pub fn root(&self) -> PhysAddr {
        self.lock().pt.root()
    }

    // ---- mapping -------------------------------------------------------------------------

    /// Creates a mapping; returns its address.
    pub fn mmap(&self, req: MapRequest) -> Result<u64, Errno> {
        let len = page_up(req.len).ok_or(Errno::ENOMEM)?;
        if len == 0 || len > TASK_SIZE {
            return Err(Errno::ENOMEM);
        }
        let mut st = self.lock();
        let addr = if req.fixed || req.noreplace {
            let end = req.addr.checked_add(len).ok_or(Errno::ENOMEM)?;
            if !req.addr.is_multiple_of(PAGE_SIZE) || req.addr < MMAP_MIN_ADDR || end > TASK_SIZE {
                return Err(if !req.addr.is_multiple_of(PAGE_SIZE) {
                    Errno::EINVAL
                } else {
                    Errno::EPERM
                });
            }
            if req.noreplace && st.overlaps(req.addr, end) {
                return Err(Errno::EEXIST);
            }
            self.unmap_locked(&mut st, req.addr, end);
            req.addr
        } else {
            let hint = req.addr & !(PAGE_SIZE - 1);
            let hint_ok = hint >= MMAP_MIN_ADDR
                && hint.checked_add(len).is_some_and(|e| e <= TASK_SIZE && !st.overlaps(hint, e));
            if hint_ok { hint } else { st.find_free(len).ok_or(Errno::ENOMEM)? }
        };
        let vma = Vma {
            start: addr,
            end: addr + len,
            prot: req.prot,
            may_write: req.may_write,
            shared: req.shared,
            growsdown: req.growsdown,
            backing: req.backing,
            pgoff: req.pgoff,
            name: req.name,
        };
        st.vmas.insert(addr, vma);
        let pages = len / PAGE_SIZE;
        if req.prot.any() && (req.populate || pages <= EAGER_PAGES) {
            // Population is an optimisation: a page that cannot be filled now (e.g. beyond the
            // end of a file) faults later with the right signal.
            let _ = self.populate(&mut st, addr, addr + len, false);
        }
        st.merge_around(addr);
        Ok(addr)
    }

    /// Removes mappings in `[addr, addr+len)`.
    pub fn munmap(&self, addr: u64, len: u64) -> Result<(), Errno> {
        if !addr.is_multiple_of(PAGE_SIZE) || len == 0 {
            return Err(Errno::EINVAL);
        }
        let end = page_up(len).and_then(|l| addr.checked_add(l)).ok_or(Errno::EINVAL)?;
        if end > TASK_SIZE {
            return Err(Errno::EINVAL);
        }
        let mut st = self.lock();
        self.unmap_locked(&mut st, addr, end);
        Ok(())
    }

    fn unmap_locked(&self, st: &mut MmState, start: u64, end: u64) {
        st.split_at(start);
        st.split_at(end);
        let keys: Vec<u64> = st.vmas.range(start..end).map(|(k, _)| *k).collect();
        for k in keys {
            st.vmas.remove(&k);
        }
        let taken = st.pt.take_range(&self.phys, VirtAddr(start), VirtAddr(end));
        if !taken.is_empty() {
            self.phys.mirror_invalidate(st.pt.root(), start, end);
        }
        let frames: Vec<PhysAddr> = taken.iter().map(|(_, p)| p.frame()).collect();
        self.phys.unmap_frames(&frames);
    }

    pub fn mprotect(&self, addr: u64, len: u64, prot: Prot) -> Result<(), Errno> {
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(Errno::EINVAL);
        }
        let end = page_up(len).and_then(|l| addr.checked_add(l)).ok_or(Errno::ENOMEM)?;
        if end > TASK_SIZE {
            return Err(Errno::ENOMEM);
        }
        if len == 0 {
            return Ok(());
        }
        let mut st = self.lock();
        if !st.fully_mapped(addr, end) {
            return Err(Errno::ENOMEM);
        }
        if prot.write && st.vmas.range(..end).any(|(_, v)| v.end > addr && !v.may_write) {
            return Err(Errno::EACCES);
        }
        st.split_at(addr);
        st.split_at(end);
        let mut downgraded = Vec::new();
        let keys: Vec<u64> = st.vmas.range(addr..end).map(|(k, _)| *k).collect();
        for k in keys {
            let (old, vma) = {
                let v = st.vmas.get_mut(&k).expect("area just listed");
                let old = v.prot;
                v.prot = prot;
                (old, v.clone())
            };
            let mut entries = Vec::new();
            st.pt.for_each_present(
                &self.phys,
                VirtAddr(vma.start),
                VirtAddr(vma.end),
                &mut |va, pte| entries.push((va, pte)),
            );
            for (va, pte) in entries {
                let writable = vma.shared || self.phys.frames.refcount(pte.frame()) == 1;
                let new = Pte::for_prot(pte.frame(), prot, writable);
                st.pt.map(&self.phys, va, new).map_err(|_| Errno::ENOMEM)?;
                if prot.is_downgrade_from(old) || (pte.writable() && !new.writable()) {
                    downgraded.push(pte.frame());
                }
            }
        }
        if !downgraded.is_empty() {
            self.phys.mirror_invalidate(st.pt.root(), addr, end);
        }
        self.phys.invalidate(&downgraded);
        st.merge_range(addr, end);
        Ok(())
    }

    /// Sets the program break; returns the new (or, on failure, unchanged) break.
    pub fn brk(&self, new: u64) -> u64 {
        let mut st = self.lock();
        let (start, cur) = (st.brk_start, st.brk);
        if new < start || new > MMAP_BASE {
            return cur;
        }
        let (old_end, new_end) = (page_up(cur).unwrap_or(cur), page_up(new).unwrap_or(new));
        if new_end > old_end {
            if st.overlaps(old_end, new_end) {
                return cur;
            }
            st.vmas.insert(old_end, Vma::anon(old_end, new_end, Prot::RW, VmaName::Heap));
            if self.populate(&mut st, old_end, new_end, true).is_err() {
                self.unmap_locked(&mut st, old_end, new_end);
                return cur;
            }
            st.merge_around(old_end);
        } else if new_end < old_end {
            self.unmap_locked(&mut st, new_end, old_end);
        }
        st.brk = new;
        new
    }

    pub fn set_brk_start(&self, addr: u64) {
        let mut st = self.lock();
        st.brk_start = addr;
        st.brk = addr;
    }

    pub fn mremap(
        &self,
        old: u64,
        old_len: u64,
        new_len: u64,
        flags: u32,
        new_addr: u64,
    ) -> Result<u64, Errno> {
        if !old.is_multiple_of(PAGE_SIZE) || flags & !(MREMAP_MAYMOVE | MREMAP_FIXED) != 0 {
            return Err(Errno::EINVAL);
        }
        if flags & MREMAP_FIXED != 0 && flags & MREMAP_MAYMOVE == 0 {
            return Err(Errno::EINVAL);
        }
        let old_len = page_up(old_len).ok_or(Errno::EINVAL)?;
        let new_len = page_up(new_len).ok_or(Errno::EINVAL)?;
        if new_len == 0 || new_len > TASK_SIZE {
            return Err(Errno::EINVAL);
        }
        let mut st = self.lock();
        let vma = st.find(old).cloned().ok_or(Errno::EFAULT)?;
        let old_end = old.checked_add(old_len).ok_or(Errno::EINVAL)?;
        if old_len == 0 || old_end > vma.end {
            return Err(Errno::EFAULT);
        }
        if flags & MREMAP_FIXED == 0 {
            if new_len <= old_len {
                self.unmap_locked(&mut st, old + new_len, old_end);
                return Ok(old);
            }
            let grow_end = old.checked_add(new_len).ok_or(Errno::ENOMEM)?;
            if old_end == vma.end && grow_end <= TASK_SIZE && !st.overlaps(old_end, grow_end) {
                st.split_at(old);
                let v = st.vmas.get_mut(&old).expect("area containing old");
                v.end = grow_end;
                return Ok(old);
            }
            if flags & MREMAP_MAYMOVE == 0 {
                return Err(Errno::ENOMEM);
            }
        }
        // Move: pick the destination, carry the page-table entries over.
        let dest = if flags & MREMAP_FIXED != 0 {
            let end = new_addr.checked_add(new_len).ok_or(Errno::EINVAL)?;
            if !new_addr.is_multiple_of(PAGE_SIZE) || new_addr < MMAP_MIN_ADDR || end > TASK_SIZE {
                return Err(Errno::EINVAL);
            }
            if new_addr < old_end && old < end {
                return Err(Errno::EINVAL);
            }
            self.unmap_locked(&mut st, new_addr, end);
            new_addr
        } else {
            st.find_free(new_len).ok_or(Errno::ENOMEM)?
        };
        let keep = old_len.min(new_len);
        st.split_at(old);
        st.split_at(old + keep);
        let mut moved = st.vmas.remove(&old).ok_or(Errno::EFAULT)?;
        moved.start = dest;
        moved.end = dest + new_len;
        let entries = st.pt.take_range(&self.phys, VirtAddr(old), VirtAddr(old + keep));
        let mut frames = Vec::new();
        for (va, pte) in entries {
            st.pt.map(&self.phys, VirtAddr(dest + (va.0 - old)), pte).map_err(|_| Errno::ENOMEM)?;
            frames.push(pte.frame());
        }
        self.phys.mirror_invalidate(st.pt.root(), old, old + keep);
        self.phys.invalidate(&frames);
        st.vmas.insert(dest, moved);
        // Whatever of the old range was not carried over goes away.
        self.unmap_locked(&mut st, old, old_end);
        Ok(dest)
    }

    /// MADV_DONTNEED: drop the pages; the next access sees zeroes (anonymous) or the file.
    pub fn discard(&self, addr: u64, len: u64) -> Result<(), Errno> {
        let end = page_up(len).and_then(|l| addr.checked_add(l)).ok_or(Errno::EINVAL)?;
        let st = self.lock();
        if !st.fully_mapped(addr, end) {
            return Err(Errno::ENOMEM);
        }
        let taken = st.pt.take_range(&self.phys, VirtAddr(addr), VirtAddr(end));
        if !taken.is_empty() {
            self.phys.mirror_invalidate(st.pt.root(), addr, end);
        }
        let frames: Vec<PhysAddr> = taken.iter().map(|(_, p)| p.frame()).collect();
        self.phys.unmap_frames(&frames);
        Ok(())
    }

    // ---- faults ----------------------------------------------------------------------------

    /// Resolves an application page fault at `addr`.
    pub fn handle_fault(&self, addr: u64, access: Access) -> Result<(), FaultError> {
        let mut st = self.lock();
        self.fault_locked(&mut st, addr, access, true)
    }

    fn fault_locked(
        &self,
        st: &mut MmState,
        addr: u64,
        access: Access,
        around: bool,
    ) -> Result<(), FaultError> {
        if addr >= TASK_SIZE {
            return Err(FaultError::Unmapped);
        }
        let page = addr & !(PAGE_SIZE - 1);
        let vma = match st.find(addr) {
            Some(v) => v.clone(),
            None => st.grow_stack(addr).ok_or(FaultError::Unmapped)?,
        };
        let allowed = match access {
            Access::Read => vma.prot.read,
            Access::Write => vma.prot.write,
            Access::Exec => vma.prot.exec,
        };
        if !allowed {
            return Err(FaultError::Protection);
        }
        match st.pt.get(&self.phys, VirtAddr(page)) {
            Some(pte) if access == Access::Write && !pte.writable() => {
                self.break_cow(st, &vma, page, pte)?;
                if around && !vma.shared {
                    let end = (page + FAULT_AROUND * PAGE_SIZE).min(vma.end);
                    self.break_cow_around(st, &vma, page + PAGE_SIZE, end);
                }
                Ok(())
            }
            // Spurious: another vCPU or the Sentry resolved it already.
            Some(_) => Ok(()),
            None => {
                self.fill_page(st, &vma, page, access == Access::Write)?;
                if around && vma.backing.is_some() && access != Access::Write {
                    // Reading a file mapping (text, read-only data): the aligned window
                    // around the page, from the object's cache, as shared frames.
                    let window = FILE_FAULT_AROUND * PAGE_SIZE;
                    let start = (page & !(window - 1)).max(vma.start);
                    let end = ((page & !(window - 1)) + window).min(vma.end);
                    let _ = self.populate_vma(st, &vma, start, end, false);
                } else if around {
                    let end = (page + FAULT_AROUND * PAGE_SIZE).min(vma.end);
                    // A write to a private file mapping is followed by writes to its
                    // neighbours (a data segment's objects): private copies now save each a
                    // fault and a copy-on-write break later.
                    let write = access == Access::Write && !vma.shared && vma.backing.is_some();
                    let _ = self.populate_vma(st, &vma, page + PAGE_SIZE, end, write);
                }
                Ok(())
            }
        }
    }

    /// Gives the page at `page` a frame according to its area.
    fn fill_page(
        &self,
        st: &mut MmState,
        vma: &Vma,
        page: u64,
        write: bool,
    ) -> Result<(), FaultError> {
        let phys = &self.phys;
        let (frame, writable) = match &vma.backing {
            None => (phys.alloc_frame().map_err(|_| FaultError::OutOfMemory)?, true),
            Some(obj) => {
                let f = obj.page(vma.page_index(page)).map_err(|e| {
                    if e == Errno::ENOMEM { FaultError::OutOfMemory } else { FaultError::Bus }
                })?;
                if vma.shared {
                    (f, true)
                } else if write && vma.prot.write {
                    // Private write: the copy is ours from the start.
                    let copy = phys.alloc_frame().map_err(|_| {
                        phys.release_frames(&[f]);
                        FaultError::OutOfMemory
                    })?;
                    phys.mem.copy_page(f, copy);
                    phys.release_frames(&[f]);
                    (copy, true)
                } else {
                    (f, false)
                }
            }
        };
        let pte = Pte::for_prot(frame, vma.prot, writable);
        st.pt.map(phys, VirtAddr(page), pte).map_err(|_| {
            phys.release_frames(&[frame]);
            FaultError::OutOfMemory
        })?;
        Ok(())
    }

    /// A write to a present read-only page of a writable private area.
    fn break_cow(
        &self,
        st: &mut MmState,
        vma: &Vma,
        page: u64,
        pte: Pte,
    ) -> Result<(), FaultError> {
        if let Some(old) = self.make_writable(st, vma, page, pte.frame())? {
            self.phys.mirror_invalidate(st.pt.root(), page, page + PAGE_SIZE);
            self.phys.unmap_frames(&[old]);
        }
        Ok(())
    }

    /// Maps `page` of `vma` (now mapped read-only to `frame`) writable: to `frame` itself where
    /// the area is shared or this mapping is the frame's only user, else to a copy of its own.
    /// The frame it no longer maps, if it copied.
    fn make_writable(
        &self,
        st: &mut MmState,
        vma: &Vma,
        page: u64,
        frame: PhysAddr,
    ) -> Result<Option<PhysAddr>, FaultError> {
        let phys = &self.phys;
        let new = if vma.shared || phys.frames.refcount(frame) == 1 {
            frame
        } else {
            let copy = phys.alloc_frame().map_err(|_| FaultError::OutOfMemory)?;
            phys.mem.copy_page(frame, copy);
            copy
        };
        if st.pt.map(phys, VirtAddr(page), Pte::for_prot(new, vma.prot, true)).is_err() {
            if new != frame {
                phys.release_frames(&[new]);
            }
            return Err(FaultError::OutOfMemory);
        }
        Ok((new != frame).then_some(frame))
    }

    /// Gives the present, read-only pages of `[start, end)` of a private writable area their
    /// own copies (after a copy-on-write break at `start - PAGE_SIZE`: its neighbours are
    /// likely written next). Best effort: stops at the first page it cannot copy.
    fn break_cow_around(&self, st: &mut MmState, vma: &Vma, start: u64, end: u64) {
        if vma.shared || !vma.prot.write {
            return;
        }
        let (mut old, mut changed) = (Vec::new(), false);
        let mut page = start;
        while page < end {
            if let Some(pte) = st.pt.get(&self.phys, VirtAddr(page))
                && !pte.writable()
            {
                let Ok(replaced) = self.make_writable(st, vma, page, pte.frame()) else { break };
                changed = true;
                old.extend(replaced);
            }
            page += PAGE_SIZE;
        }
        // Mirrors drop the old translations (read-only, or of the shared frame) so that the
        // next fault there maps the range with its new rights at once.
        if changed {
            self.phys.mirror_invalidate(st.pt.root(), start, page);
        }
        self.phys.unmap_frames(&old);
    }

    /// Fills every missing page of `[start, end)` (all inside mapped areas).
    fn populate(
        &self,
        st: &mut MmState,
        start: u64,
        end: u64,
        write: bool,
    ) -> Result<(), FaultError> {
        let vmas: Vec<Vma> =
            st.vmas.range(..end).filter(|(_, v)| v.end > start).map(|(_, v)| v.clone()).collect();
        for v in vmas {
            self.populate_vma(st, &v, start.max(v.start), end.min(v.end), write)?;
        }
        Ok(())
    }

    fn populate_vma(
        &self,
        st: &mut MmState,
        vma: &Vma,
        start: u64,
        end: u64,
        write: bool,
    ) -> Result<(), FaultError> {
        if !vma.prot.any() {
            return Ok(());
        }
        let mut page = start;
        while page < end {
            if st.pt.get(&self.phys, VirtAddr(page)).is_none() {
                self.fill_page(st, vma, page, write && vma.prot.write)?;
            }
            page += PAGE_SIZE;
        }
        Ok(())
    }

    // ---- copies ----------------------------------------------------------------------------

    /// Runs `f` on each host slice backing `[addr, addr+len)`, faulting pages in as an access
    /// of kind `access` would. EFAULT if any part is not accessible.
    fn with_pages(
        &self,
        addr: u64,
        len: usize,
        access: Access,
        f: &mut dyn FnMut(*mut u8, usize, usize),
    ) -> Result<(), Errno> {
        if len == 0 {
            return Ok(());
        }
        let end = addr.checked_add(len as u64).ok_or(Errno::EFAULT)?;
        if end > TASK_SIZE {
            return Err(Errno::EFAULT);
        }
        let mut st = self.lock();
        let mut pos = addr;
        while pos < end {
            let page = pos & !(PAGE_SIZE - 1);
            let chunk = ((page + PAGE_SIZE).min(end) - pos) as usize;
            let pte = match st.pt.get(&self.phys, VirtAddr(page)) {
                Some(p) if p.user_accessible() && (access != Access::Write || p.writable()) => p,
                _ => {
                    self.fault_locked(&mut st, pos, access, false).map_err(Errno::from)?;
                    st.pt.get(&self.phys, VirtAddr(page)).ok_or(Errno::EFAULT)?
                }
            };
            let host = self
                .phys
                .mem
                .ptr(PhysAddr(pte.frame().0 + (pos - page)), chunk as u64)
                .ok_or(Errno::EFAULT)?;
            f(host, chunk, (pos - addr) as usize);
            pos += chunk as u64;
        }
        Ok(())
    }

    /// Copies application memory at `addr` into `buf`.
    pub fn copy_in(&self, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
        let dst = buf.as_mut_ptr();
        self.with_pages(addr, buf.len(), Access::Read, &mut |host, n, off| {
            // SAFETY: `host` points at `n` bytes of a frame held by this address space (the
            // lock is held); `dst + off .. + n` is within `buf`.
            unsafe { std::ptr::copy_nonoverlapping(host, dst.add(off), n) }
        })
    }

    /// Copies `data` into application memory at `addr`.
    pub fn copy_out(&self, addr: u64, data: &[u8]) -> Result<(), Errno> {
        let src = data.as_ptr();
        self.with_pages(addr, data.len(), Access::Write, &mut |host, n, off| {
            // SAFETY: as in `copy_in`, with the roles reversed.
            unsafe { std::ptr::copy_nonoverlapping(src.add(off), host, n) }
        })
    }

    /// Zeroes `len` bytes of application memory at `addr`.
    pub fn zero_out(&self, addr: u64, len: usize) -> Result<(), Errno> {
        self.with_pages(addr, len, Access::Write, &mut |host, n, _| {
            // SAFETY: `host` points at `n` writable bytes of a held frame.
            unsafe { std::ptr::write_bytes(host, 0, n) }
        })
    }

    /// Reads a NUL-terminated string of at most `max` bytes (without the NUL).
    pub fn read_cstring(&self, addr: u64, max: usize) -> Result<Vec<u8>, Errno> {
        let mut out = Vec::new();
        let mut pos = addr;
        loop {
            let chunk = (PAGE_SIZE - (pos % PAGE_SIZE)) as usize;
            let mut buf = vec![0u8; chunk];
            self.copy_in(pos, &mut buf)?;
            if let Some(i) = buf.iter().position(|&b| b == 0) {
                out.extend_from_slice(&buf[..i]);
                return Ok(out);
            }
            out.extend_from_slice(&buf);
            if out.len() >= max {
                return Err(Errno::ENAMETOOLONG);
            }
            pos = pos.checked_add(chunk as u64).ok_or(Errno::EFAULT)?;
        }
    }

    /// Guest-physical location of the u32 at `addr` for futexes, faulting it in for reading.
    pub fn futex_frame(&self, addr: u64) -> Result<(PhysAddr, bool), Errno> {
        let mut st = self.lock();
        let page = addr & !(PAGE_SIZE - 1);
        let shared = st.find(addr).map(|v| v.shared).ok_or(Errno::EFAULT)?;
        if st.pt.get(&self.phys, VirtAddr(page)).is_none() {
            self.fault_locked(&mut st, addr, Access::Read, false).map_err(Errno::from)?;
        }
        let pte = st.pt.get(&self.phys, VirtAddr(page)).ok_or(Errno::EFAULT)?;
        Ok((PhysAddr(pte.frame().0 + addr % PAGE_SIZE), shared))
    }

    /// Atomically compares and exchanges the u32 at `addr` (futex operations, robust lists).
    pub fn cmpxchg_u32(&self, addr: u64, old: u32, new: u32) -> Result<u32, Errno> {
        if !addr.is_multiple_of(4) {
            return Err(Errno::EINVAL);
        }
        let mut result = 0;
        self.with_pages(addr, 4, Access::Write, &mut |host, _, _| {
            // SAFETY: 4 aligned bytes inside a held frame; the guest may access them
            // concurrently, hence the atomic.
            let a = unsafe { &*(host as *const std::sync::atomic::AtomicU32) };
            result = match a.compare_exchange(old, new, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(v) | Err(v) => v,
            };
        })?;
        Ok(result)
    }

    // ---- fork and teardown -----------------------------------------------------------------

    /// A copy of this address space for a forked child.
    pub fn fork(&self) -> Result<MemoryManager, Errno> {
        let child = MemoryManager::new(self.phys.clone(), self.kernel_pdpt)?;
        let st = self.lock();
        let mut cst = child.lock();
        cst.vmas = st.vmas.clone();
        cst.brk_start = st.brk_start;
        cst.brk = st.brk;
        cst.arg_range = st.arg_range;
        cst.env_range = st.env_range;
        cst.auxv = st.auxv.clone();

        let mut entries = Vec::new();
        st.pt.for_each_present(&self.phys, VirtAddr(0), VirtAddr(TASK_SIZE), &mut |va, pte| {
            entries.push((va, pte))
        });
        let private_writable =
            |va: u64, st: &MmState| st.find(va).is_some_and(|v| !v.shared && v.prot.write);
        let eager = entries.iter().filter(|(va, _)| private_writable(va.0, &st)).count()
            <= FORK_EAGER_COPY_PAGES;
        let mut downgraded = Vec::new();
        for (va, pte) in entries {
            let vma = st.find(va.0).cloned().ok_or(Errno::EFAULT)?;
            if !vma.shared && vma.prot.write {
                if eager {
                    let copy = self.phys.alloc_frame().map_err(|_| Errno::ENOMEM)?;
                    self.phys.mem.copy_page(pte.frame(), copy);
                    cst.pt
                        .map(&self.phys, va, Pte::for_prot(copy, vma.prot, true))
                        .map_err(|_| Errno::ENOMEM)?;
                    continue;
                }
                // Copy-on-write: both sides read-only until one writes.
                let ro = Pte::for_prot(pte.frame(), vma.prot, false);
                if pte.writable() {
                    st.pt.map(&self.phys, va, ro).map_err(|_| Errno::ENOMEM)?;
                    downgraded.push(pte.frame());
                }
                self.phys.frames.incref(pte.frame());
                cst.pt.map(&self.phys, va, ro).map_err(|_| Errno::ENOMEM)?;
            } else {
                self.phys.frames.incref(pte.frame());
                cst.pt.map(&self.phys, va, pte).map_err(|_| Errno::ENOMEM)?;
            }
        }
        if !downgraded.is_empty() {
            self.phys.mirror_invalidate(st.pt.root(), 0, TASK_SIZE);
        }
        self.phys.invalidate(&downgraded);
        drop(cst);
        Ok(child)
    }

    /// Snapshot of the areas (for /proc/self/maps).
    pub fn areas(&self) -> Vec<Vma> {
        self.lock().vmas.values().cloned().collect()
    }

    /// Resident pages (for /proc/self/status and statm).
    pub fn resident_pages(&self) -> u64 {
        let st = self.lock();
        let mut n = 0;
        st.pt.for_each_present(&self.phys, VirtAddr(0), VirtAddr(TASK_SIZE), &mut |_, _| n += 1);
        n
    }
}

impl Drop for MemoryManager {
    fn drop(&mut self) {
        let phys = self.phys.clone();
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = &phys.mirror {
            m.dropped(st.pt.root());
        }
        let mut frames = Vec::new();
        st.pt.for_each_present(&phys, VirtAddr(0), VirtAddr(TASK_SIZE), &mut |_, pte| {
            frames.push(pte.frame())
        });
        // No vCPU runs this address space any more, so its translations are unreachable; frames
        // still used elsewhere need no invalidation.
        phys.release_frames(&frames);
        let pt = std::mem::replace(&mut st.pt, PageTables::bare(PhysAddr(0)));
        pt.destroy(&phys);
    }
}

impl MmState {
    pub fn find(&self, addr: u64) -> Option<&Vma> {
        self.vmas.range(..=addr).next_back().map(|(_, v)| v).filter(|v| v.contains(addr))
    }

    fn overlaps(&self, start: u64, end: u64) -> bool {
        self.vmas.range(..end).next_back().is_some_and(|(_, v)| v.end > start)
    }

    fn fully_mapped(&self, start: u64, end: u64) -> bool {
        let mut pos = start;
        for (_, v) in self.vmas.range(..end) {
            if v.end <= pos {
                continue;
            }
            if v.start > pos {
                return false;
            }
            pos = v.end;
            if pos >= end {
                return true;
            }
        }
        pos >= end
    }

    /// Highest free range of `len` bytes below MMAP_BASE.
    fn find_free(&self, len: u64) -> Option<u64> {
        let mut end = MMAP_BASE;
        for (_, v) in self.vmas.range(..MMAP_BASE).rev() {
            if v.end <= end && end - v.end >= len {
                return Some(end - len);
            }
            end = end.min(v.start);
        }
        (end >= MMAP_MIN_ADDR + len).then(|| end - len)
    }

    /// Splits the area containing `addr` so that an area starts there.
    fn split_at(&mut self, addr: u64) {
        let Some((_, v)) = self.vmas.range_mut(..addr).next_back() else { return };
        if v.end > addr {
            let hi = v.split_off(addr);
            self.vmas.insert(addr, hi);
        }
    }

    /// Merges the area at `addr` with its neighbours where they are compatible.
    fn merge_around(&mut self, addr: u64) {
        let Some(v) = self.vmas.get(&addr) else { return };
        let end = v.end;
        self.merge_range(addr, end);
    }

    fn merge_range(&mut self, start: u64, end: u64) {
        let first = self.vmas.range(..start).next_back().map(|(k, _)| *k).unwrap_or(start);
        let keys: Vec<u64> = self.vmas.range(first..=end).map(|(k, _)| *k).collect();
        let mut cur: Option<u64> = None;
        for k in keys {
            match cur {
                Some(c) => {
                    let next = self.vmas.get(&k).cloned();
                    let merge = next
                        .as_ref()
                        .is_some_and(|n| self.vmas.get(&c).is_some_and(|p| p.mergeable_with(n)));
                    if merge {
                        let n = self.vmas.remove(&k).expect("listed area");
                        self.vmas.get_mut(&c).expect("current area").end = n.end;
                    } else {
                        cur = Some(k);
                    }
                }
                None => cur = Some(k),
            }
        }
    }

    /// Extends a grows-down area (the stack) down to cover `addr`, if close enough.
    fn grow_stack(&mut self, addr: u64) -> Option<Vma> {
        let (&k, v) = self.vmas.range(addr..).next()?;
        if !v.growsdown || k - addr > STACK_GUARD_GAP {
            return None;
        }
        let new_start = addr & !(PAGE_SIZE - 1);
        if self.overlaps(new_start, k) {
            return None;
        }
        let mut grown = self.vmas.remove(&k)?;
        grown.start = new_start;
        self.vmas.insert(new_start, grown.clone());
        Some(grown)
    }
}
