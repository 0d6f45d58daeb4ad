//! What a mapping can be backed by: memory objects whose pages live in guest frames.

use crate::sync::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::abi::Errno;
use crate::mm::{PAGE_SIZE, PhysAddr, Physical};

/// Pages that can be mapped into address spaces: a file's page cache, a tmpfs file, a shared
/// anonymous region.
pub trait Mappable: Send + Sync {
    /// The frame holding page `index`, with one extra reference owned by the caller.
    /// `Err(EFAULT)` for pages wholly beyond the end (the mapping gets SIGBUS).
    fn page(&self, index: u64) -> Result<PhysAddr, Errno>;

    /// A name for /proc/self/maps.
    fn map_name(&self) -> String {
        String::new()
    }

    /// Device and inode numbers for /proc/self/maps.
    fn map_ids(&self) -> (u64, u64) {
        (0, 0)
    }

    /// The concrete object, for callers that look for one kind (shmdt finds its segments).
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }
}

/// Source of the initial contents of pages not yet in memory.
pub trait PageSource: Send + Sync {
    /// Fills `buf` (one page) with the bytes at `offset`; bytes past the end stay zero.
    fn read_page(&self, offset: u64, buf: &mut [u8]) -> Result<(), Errno>;
}

/// Pages of memory, created zero-filled (or from a `PageSource`) when first touched.
/// Used for tmpfs file data, shared anonymous mappings and the page cache of host files.
pub struct MemObject {
    phys: Arc<Physical>,
    state: Mutex<MemState>,
    source: Mutex<Option<Arc<dyn PageSource>>>,
}

struct MemState {
    pages: BTreeMap<u64, PhysAddr>,
    size: u64,
}

impl MemObject {
    pub fn new(phys: Arc<Physical>, size: u64) -> Self {
        Self {
            phys,
            state: Mutex::new(MemState { pages: BTreeMap::new(), size }),
            source: Mutex::new(None),
        }
    }

    pub fn with_source(phys: Arc<Physical>, size: u64, source: Arc<dyn PageSource>) -> Self {
        let state = Mutex::new(MemState { pages: BTreeMap::new(), size });
        Self { phys, state, source: Mutex::new(Some(source)) }
    }

    fn source(&self) -> Option<Arc<dyn PageSource>> {
        self.source.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reads every page from the source and stops consulting it: from now on the object alone
    /// holds the data (copy-up before a write).
    pub fn detach_source(&self) -> Result<(), Errno> {
        if self.source().is_none() {
            return Ok(());
        }
        let mut st = self.lock();
        for index in 0..st.size.div_ceil(PAGE_SIZE) {
            self.frame(&mut st, index)?;
        }
        *self.source.lock().unwrap_or_else(|e| e.into_inner()) = None;
        Ok(())
    }

    #[track_caller]
    fn lock(&self) -> crate::sync::MutexGuard<'_, MemState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn size(&self) -> u64 {
        self.lock().size
    }

    /// The frame of page `index`, created on first use. The object keeps its own reference.
    fn frame(&self, st: &mut MemState, index: u64) -> Result<PhysAddr, Errno> {
        if let Some(f) = st.pages.get(&index) {
            return Ok(*f);
        }
        let phys = &self.phys;
        let f = phys.alloc_frame().map_err(|_| Errno::ENOMEM)?;
        if let Some(src) = self.source() {
            let mut buf = vec![0u8; PAGE_SIZE as usize];
            if let Err(e) = src.read_page(index * PAGE_SIZE, &mut buf) {
                phys.release_frames(&[f]);
                return Err(e);
            }
            phys.mem.write(f, &buf);
        }
        st.pages.insert(index, f);
        Ok(f)
    }

    /// Reads up to `out.len()` bytes at `offset`; returns how many (short at end of object).
    pub fn read(&self, offset: u64, out: &mut [u8]) -> Result<usize, Errno> {
        let phys = &self.phys;
        let mut st = self.lock();
        if offset >= st.size {
            return Ok(0);
        }
        let n = out.len().min((st.size - offset) as usize);
        let mut done = 0;
        while done < n {
            let pos = offset + done as u64;
            let (index, off) = (pos / PAGE_SIZE, (pos % PAGE_SIZE) as usize);
            let chunk = (PAGE_SIZE as usize - off).min(n - done);
            match st.pages.get(&index) {
                Some(f) => phys.mem.read(PhysAddr(f.0 + off as u64), &mut out[done..done + chunk]),
                None if self.source().is_some() => {
                    let f = self.frame(&mut st, index)?;
                    phys.mem.read(PhysAddr(f.0 + off as u64), &mut out[done..done + chunk]);
                }
                None => out[done..done + chunk].fill(0),
            }
            done += chunk;
        }
        Ok(n)
    }

    /// Writes `data` at `offset`, growing the object as needed.
    pub fn write(&self, offset: u64, data: &[u8]) -> Result<usize, Errno> {
        let end = offset.checked_add(data.len() as u64).ok_or(Errno::EFBIG)?;
        let phys = &self.phys;
        let mut st = self.lock();
        let mut done = 0;
        while done < data.len() {
            let pos = offset + done as u64;
            let (index, off) = (pos / PAGE_SIZE, (pos % PAGE_SIZE) as usize);
            let chunk = (PAGE_SIZE as usize - off).min(data.len() - done);
            let f = self.frame(&mut st, index)?;
            phys.mem.write(PhysAddr(f.0 + off as u64), &data[done..done + chunk]);
            done += chunk;
        }
        if end > st.size {
            st.size = end;
        }
        Ok(data.len())
    }

    /// Sets the size; pages past the new end are dropped and the tail of the last page zeroed.
    pub fn truncate(&self, size: u64) {
        let phys = &self.phys;
        let mut st = self.lock();
        let keep = size.div_ceil(PAGE_SIZE);
        let dropped: Vec<PhysAddr> = st.pages.split_off(&keep).into_values().collect();
        if !size.is_multiple_of(PAGE_SIZE)
            && let Some(f) = st.pages.get(&(size / PAGE_SIZE))
        {
            let off = size % PAGE_SIZE;
            phys.mem.zero(PhysAddr(f.0 + off), PAGE_SIZE - off);
        }
        st.size = size;
        drop(st);
        // Mappings of dropped pages keep their own references; the object lets go of its own.
        phys.release_frames(&dropped);
    }

    /// Number of resident pages.
    pub fn resident(&self) -> u64 {
        self.lock().pages.len() as u64
    }
}

impl Mappable for MemObject {
    fn page(&self, index: u64) -> Result<PhysAddr, Errno> {
        let mut st = self.lock();
        if index >= st.size.div_ceil(PAGE_SIZE) {
            return Err(Errno::EFAULT);
        }
        let f = self.frame(&mut st, index)?;
        self.phys.frames.incref(f);
        Ok(f)
    }
}

impl Drop for MemObject {
    fn drop(&mut self) {
        let pages: Vec<PhysAddr> = std::mem::take(&mut self.lock().pages).into_values().collect();
        self.phys.release_frames(&pages);
    }
}
