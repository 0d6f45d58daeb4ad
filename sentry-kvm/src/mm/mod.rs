//! Memory: guest-physical frames, page tables, and per-process address spaces.

pub mod address_space;
pub mod frames;
pub mod mappable;
pub mod page_table;
pub mod phys;
pub mod vma;

use std::sync::Arc;

use frames::{FrameAllocator, OutOfFrames, TranslationFlush};
use phys::PhysMemory;

pub const PAGE_SIZE: u64 = 4096;

/// A guest-physical address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PhysAddr(pub u64);

/// A guest-virtual address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VirtAddr(pub u64);

impl VirtAddr {
    pub fn page_down(self) -> Self {
        VirtAddr(self.0 & !(PAGE_SIZE - 1))
    }
    pub fn page_offset(self) -> u64 {
        self.0 & (PAGE_SIZE - 1)
    }
}

/// Rounds `v` up to a page boundary, or None on overflow.
pub fn page_up(v: u64) -> Option<u64> {
    v.checked_add(PAGE_SIZE - 1).map(|x| x & !(PAGE_SIZE - 1))
}

/// Guest-physical memory with its frame allocator: what every address space draws from.
pub struct Physical {
    pub mem: PhysMemory,
    pub frames: FrameAllocator,
    pub flush: Arc<dyn TranslationFlush>,
    /// Where address spaces are also mapped by virtual address (the systrap platform's stub
    /// processes); None where the page tables are all there is (KVM).
    pub mirror: Option<Arc<dyn Mirror>>,
}

/// Told of every change to an address space that takes a translation away or changes it, before
/// the frames concerned are freed; and of the address space's end.
pub trait Mirror: Send + Sync {
    fn invalidate(&self, root: PhysAddr, start: u64, end: u64);
    fn dropped(&self, root: PhysAddr);
}

impl Physical {
    /// Passes an address space's changed range to the mirror, if there is one.
    pub fn mirror_invalidate(&self, root: PhysAddr, start: u64, end: u64) {
        if let Some(m) = &self.mirror {
            m.invalidate(root, start, end);
        }
    }

    pub fn alloc_frame(&self) -> Result<PhysAddr, OutOfFrames> {
        self.frames.alloc(&self.mem, self.flush.as_ref())
    }

    /// Drops one reference to each frame (frames that reach zero go back to the host).
    pub fn release_frames(&self, frames: &[PhysAddr]) {
        if let Err(e) = self.frames.release(&self.mem, frames) {
            // The frames stay allocated (leaked) rather than reused with stale contents.
            tracing::error!("releasing guest frames failed: {e}");
        }
    }

    /// Drops the references of page-table entries that were just removed: freed frames go back
    /// to the host, and cached translations of frames still used elsewhere are dropped so that no
    /// vCPU keeps using the removed entries.
    pub fn unmap_frames(&self, frames: &[PhysAddr]) {
        match self.frames.release(&self.mem, frames) {
            Ok(kept) => self.invalidate(&kept),
            Err(e) => tracing::error!("releasing guest frames failed: {e}"),
        }
    }

    /// Drops every cached guest translation of `frames` (after their entries lost rights).
    pub fn invalidate(&self, frames: &[PhysAddr]) {
        let mut v: Vec<u64> = frames.iter().map(|f| f.0).collect();
        v.sort_unstable();
        v.dedup();
        let mut i = 0;
        while i < v.len() {
            let mut j = i + 1;
            while j < v.len() && v[j] == v[j - 1] + PAGE_SIZE {
                j += 1;
            }
            self.mem.invalidate_translations(PhysAddr(v[i]), (j - i) as u64 * PAGE_SIZE);
            i = j;
        }
    }

    pub fn free_table(&self, frame: PhysAddr) {
        if let Err(e) = self.frames.release_table(&self.mem, frame, self.flush.as_ref()) {
            tracing::error!("releasing a page-table frame failed: {e}");
        }
    }
}
