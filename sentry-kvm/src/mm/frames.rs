//! Allocation and reference counting of 4 KiB guest frames.
//!
//! Freed data frames go straight back to the host (hole punched in the memfd), which zeroes them
//! and drops every cached guest translation; where nothing caches translations of its own (the
//! systrap platform, whose stubs drop theirs before frames are freed), up to a limit of them are
//! kept instead and zeroed by the Sentry when reused, sparing the host a hole and a fresh page.
//! Freed page-table frames are different: a shadow MMU may still cache the old table under that
//! frame's address, so they wait in quarantine until a whole-VM translation flush (see
//! `Machine::flush_all_translations`) makes reuse safe.

use crate::sync::Mutex;

use crate::mm::phys::{PhysError, PhysMemory};
use crate::mm::{PAGE_SIZE, PhysAddr};

/// No free frame is left in the sandbox's guest memory.
#[derive(Debug, thiserror::Error)]
#[error("sandbox guest memory exhausted")]
pub struct OutOfFrames;

/// Flushes every cached guest translation in the VM, so that quarantined page-table frames can
/// be reused.
pub trait TranslationFlush: Send + Sync {
    fn flush_all(&self);
}

/// How many quarantined page-table frames trigger a whole-VM flush.
const QUARANTINE_LIMIT: usize = 512;

struct State {
    /// Frames never handed out start here.
    next: u64,
    /// Frames returned to the host, ready to reuse (zero-filled).
    free: Vec<u64>,
    /// Freed frames kept from the host (stale contents), at most `FrameAllocator::recycle`.
    recycled: Vec<u64>,
    /// Page-table frames awaiting a translation flush before reuse.
    quarantine: Vec<u64>,
    /// Reference count per frame number; 0 means free.
    refs: Vec<u32>,
    in_use: u64,
}

pub struct FrameAllocator {
    state: Mutex<State>,
    end: u64,
    /// How many freed frames may be kept rather than given back to the host.
    recycle: usize,
}

impl FrameAllocator {
    /// Manages frames in `[start, end)` of guest-physical memory.
    pub fn new(start: PhysAddr, end: u64) -> Self {
        Self::recycling(start, end, 0)
    }

    /// As `new`, keeping up to `recycle` freed frames for reuse instead of giving them back
    /// to the host: only where no translation of a freed frame can survive elsewhere.
    pub fn recycling(start: PhysAddr, end: u64, recycle: usize) -> Self {
        let frames = (end / PAGE_SIZE) as usize;
        Self {
            state: Mutex::new(State {
                next: start.0,
                free: Vec::new(),
                recycled: Vec::new(),
                quarantine: Vec::new(),
                refs: vec![0; frames],
                in_use: 0,
            }),
            end,
            recycle,
        }
    }

    #[track_caller]
    fn lock(&self) -> crate::sync::MutexGuard<'_, State> {
        // A panic while holding this lock would be a Sentry bug; the counts stay usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A zero-filled frame (of `mem`) with one reference.
    pub fn alloc(
        &self,
        mem: &PhysMemory,
        flush: &dyn TranslationFlush,
    ) -> Result<PhysAddr, OutOfFrames> {
        let mut st = self.lock();
        if let Some(f) = st.recycled.pop() {
            st.refs[(f / PAGE_SIZE) as usize] = 1;
            st.in_use += 1;
            drop(st);
            mem.zero(PhysAddr(f), PAGE_SIZE);
            return Ok(PhysAddr(f));
        }
        let frame = if let Some(f) = st.free.pop() {
            f
        } else if st.next + PAGE_SIZE <= self.end {
            let f = st.next;
            st.next += PAGE_SIZE;
            f
        } else if !st.quarantine.is_empty() {
            flush.flush_all();
            let q = std::mem::take(&mut st.quarantine);
            st.free.extend(q);
            st.free.pop().ok_or(OutOfFrames)?
        } else {
            return Err(OutOfFrames);
        };
        st.refs[(frame / PAGE_SIZE) as usize] = 1;
        st.in_use += 1;
        Ok(PhysAddr(frame))
    }

    /// Adds a reference to an allocated frame (shared mappings, copy-on-write).
    pub fn incref(&self, frame: PhysAddr) {
        let mut st = self.lock();
        let r = &mut st.refs[(frame.0 / PAGE_SIZE) as usize];
        debug_assert!(*r > 0, "incref of a free frame {:#x}", frame.0);
        *r += 1;
    }

    pub fn refcount(&self, frame: PhysAddr) -> u32 {
        self.lock().refs[(frame.0 / PAGE_SIZE) as usize]
    }

    /// Drops one reference to each data frame; frames reaching zero go back to the host.
    /// Returns the frames that are still referenced.
    pub fn release(
        &self,
        mem: &PhysMemory,
        frames: &[PhysAddr],
    ) -> Result<Vec<PhysAddr>, PhysError> {
        let mut freed = Vec::new();
        let mut kept = Vec::new();
        {
            let mut st = self.lock();
            for f in frames {
                let r = &mut st.refs[(f.0 / PAGE_SIZE) as usize];
                debug_assert!(*r > 0, "double free of frame {:#x}", f.0);
                *r = r.saturating_sub(1);
                if *r == 0 {
                    freed.push(f.0);
                } else {
                    kept.push(*f);
                }
            }
        }
        if freed.is_empty() {
            return Ok(kept);
        }
        freed.sort_unstable();
        {
            let mut st = self.lock();
            let keep = self.recycle.saturating_sub(st.recycled.len()).min(freed.len());
            if keep > 0 {
                st.in_use -= keep as u64;
                // Highest first, so that allocations pop them in ascending order (see below).
                st.recycled.extend(freed.drain(..keep).rev());
            }
        }
        if freed.is_empty() {
            return Ok(kept);
        }
        // Punch holes in contiguous runs, then make the frames available.
        let mut i = 0;
        while i < freed.len() {
            let start = freed[i];
            let mut j = i + 1;
            while j < freed.len() && freed[j] == freed[j - 1] + PAGE_SIZE {
                j += 1;
            }
            mem.release(PhysAddr(start), (j - i) as u64 * PAGE_SIZE)?;
            i = j;
        }
        let mut st = self.lock();
        st.in_use -= freed.len() as u64;
        // Highest first, so that allocations pop them in ascending order: a mapping filled page
        // by page then gets contiguous frames, which a stub process maps with one mmap.
        st.free.extend(freed.into_iter().rev());
        Ok(kept)
    }

    /// Frees a page-table frame into quarantine (see the module docs).
    pub fn release_table(
        &self,
        mem: &PhysMemory,
        frame: PhysAddr,
        flush: &dyn TranslationFlush,
    ) -> Result<(), PhysError> {
        mem.release(frame, PAGE_SIZE)?;
        let mut st = self.lock();
        st.refs[(frame.0 / PAGE_SIZE) as usize] = 0;
        st.in_use -= 1;
        st.quarantine.push(frame.0);
        if st.quarantine.len() >= QUARANTINE_LIMIT {
            flush.flush_all();
            let q = std::mem::take(&mut st.quarantine);
            st.free.extend(q);
        }
        Ok(())
    }

    /// Frames currently allocated.
    pub fn in_use(&self) -> u64 {
        self.lock().in_use
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoFlush;
    impl TranslationFlush for NoFlush {
        fn flush_all(&self) {}
    }

    #[test]
    fn frames_are_reused_zeroed_after_release() {
        let mem = PhysMemory::new(16 * PAGE_SIZE).unwrap();
        let alloc = FrameAllocator::new(PhysAddr(4 * PAGE_SIZE), mem.size());
        let f = alloc.alloc(&mem, &NoFlush).unwrap();
        mem.write(f, b"secret");
        alloc.release(&mem, &[f]).unwrap();
        let g = alloc.alloc(&mem, &NoFlush).unwrap();
        assert_eq!(f, g);
        let mut buf = [0xffu8; 6];
        mem.read(g, &mut buf);
        assert_eq!(buf, [0; 6]);
    }

    #[test]
    fn shared_frames_survive_until_last_reference() {
        let mem = PhysMemory::new(8 * PAGE_SIZE).unwrap();
        let alloc = FrameAllocator::new(PhysAddr(0), mem.size());
        let f = alloc.alloc(&mem, &NoFlush).unwrap();
        alloc.incref(f);
        mem.write(f, b"x");
        alloc.release(&mem, &[f]).unwrap();
        assert_eq!(alloc.refcount(f), 1);
        let mut b = [0u8; 1];
        mem.read(f, &mut b);
        assert_eq!(&b, b"x");
        alloc.release(&mem, &[f]).unwrap();
        assert_eq!(alloc.in_use(), 0);
    }

    #[test]
    fn recycled_frames_are_reused_zeroed_and_the_rest_go_back_to_the_host() {
        let mem = PhysMemory::new(16 * PAGE_SIZE).unwrap();
        let alloc = FrameAllocator::recycling(PhysAddr(0), mem.size(), 1);
        let (f, g) = (alloc.alloc(&mem, &NoFlush).unwrap(), alloc.alloc(&mem, &NoFlush).unwrap());
        mem.write(f, b"secret");
        mem.write(g, b"secret");
        alloc.release(&mem, &[f, g]).unwrap();
        assert_eq!(alloc.in_use(), 0);
        let mut buf = [0xffu8; 6];
        // g went back to the host (zeroed there); f was kept, and is zeroed when handed out.
        mem.read(g, &mut buf);
        assert_eq!(buf, [0; 6]);
        let h = alloc.alloc(&mem, &NoFlush).unwrap();
        assert_eq!(h, f);
        mem.read(h, &mut buf);
        assert_eq!(buf, [0; 6]);
    }

    #[test]
    fn exhaustion_is_an_error() {
        let mem = PhysMemory::new(2 * PAGE_SIZE).unwrap();
        let alloc = FrameAllocator::new(PhysAddr(0), mem.size());
        alloc.alloc(&mem, &NoFlush).unwrap();
        alloc.alloc(&mem, &NoFlush).unwrap();
        assert!(alloc.alloc(&mem, &NoFlush).is_err());
    }
}
