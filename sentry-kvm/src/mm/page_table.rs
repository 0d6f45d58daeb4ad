//! x86-64 four-level page tables that the Sentry builds in guest memory for each address space.
//!
//! The Sentry is the only writer of these tables (KVM may set accessed/dirty bits, which we
//! preset). Removing or downgrading a leaf is followed by the caller invalidating translations
//! of the old frame; freed tables go through the frame allocator's quarantine.

use crate::mm::frames::OutOfFrames;
use crate::mm::{PAGE_SIZE, PhysAddr, Physical, VirtAddr};

pub const PTE_PRESENT: u64 = 1 << 0;
pub const PTE_WRITE: u64 = 1 << 1;
pub const PTE_USER: u64 = 1 << 2;
pub const PTE_ACCESSED: u64 = 1 << 5;
pub const PTE_DIRTY: u64 = 1 << 6;
pub const PTE_HUGE: u64 = 1 << 7;
pub const PTE_GLOBAL: u64 = 1 << 8;
pub const PTE_NX: u64 = 1 << 63;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Index of the top-level slot holding the Sentry's own (supervisor) mappings.
pub const KERNEL_PML4_SLOT: usize = 511;

/// A leaf entry: a frame and its access rights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pte(pub u64);

impl Pte {
    /// A user page; accessed and (for writable pages) dirty bits are preset so that the
    /// hardware or KVM never needs to write them back.
    pub fn user(frame: PhysAddr, write: bool, exec: bool) -> Self {
        let mut v = frame.0 | PTE_PRESENT | PTE_USER | PTE_ACCESSED;
        if write {
            v |= PTE_WRITE | PTE_DIRTY;
        }
        if !exec {
            v |= PTE_NX;
        }
        Pte(v)
    }

    /// A supervisor-only page of the Sentry's trampoline region.
    pub fn kernel(frame: PhysAddr, write: bool, exec: bool) -> Self {
        let mut v = frame.0 | PTE_PRESENT | PTE_ACCESSED | PTE_GLOBAL;
        if write {
            v |= PTE_WRITE | PTE_DIRTY;
        }
        if !exec {
            v |= PTE_NX;
        }
        Pte(v)
    }

    /// A user page with the rights of `prot`; PROT_NONE pages stay present but supervisor-only,
    /// so that the frame is kept while every user access faults.
    pub fn for_prot(frame: PhysAddr, prot: crate::mm::vma::Prot, writable: bool) -> Self {
        if !prot.any() {
            return Pte(frame.0 | PTE_PRESENT | PTE_ACCESSED | PTE_NX);
        }
        Pte::user(frame, prot.write && writable, prot.exec)
    }

    pub fn user_accessible(self) -> bool {
        self.0 & PTE_USER != 0
    }

    pub fn frame(self) -> PhysAddr {
        PhysAddr(self.0 & ADDR_MASK)
    }
    pub fn writable(self) -> bool {
        self.0 & PTE_WRITE != 0
    }
    pub fn executable(self) -> bool {
        self.0 & PTE_NX == 0
    }
}

fn index(va: u64, level: u32) -> u64 {
    (va >> (12 + 9 * level)) & 0x1ff
}

/// The root of one address space's page tables.
#[derive(Debug)]
pub struct PageTables {
    root: PhysAddr,
}

impl PageTables {
    /// A new, empty user address space sharing the kernel slot of `kernel_pdpt`.
    pub fn new(phys: &Physical, kernel_pdpt: PhysAddr) -> Result<Self, OutOfFrames> {
        let root = phys.alloc_frame()?;
        phys.mem.write_u64(
            PhysAddr(root.0 + 8 * KERNEL_PML4_SLOT as u64),
            kernel_pdpt.0 | PTE_PRESENT | PTE_WRITE | PTE_ACCESSED | PTE_USER,
        );
        Ok(Self { root })
    }

    /// A root for the Sentry's own tables, with no kernel slot yet.
    pub fn bare(root: PhysAddr) -> Self {
        Self { root }
    }

    pub fn root(&self) -> PhysAddr {
        self.root
    }

    /// The slot of the leaf entry for `va`, creating intermediate tables when `create`.
    fn leaf_slot(
        &self,
        phys: &Physical,
        va: VirtAddr,
        create: bool,
        user: bool,
    ) -> Result<Option<PhysAddr>, OutOfFrames> {
        let mut table = self.root;
        for level in (1..4).rev() {
            let slot = PhysAddr(table.0 + 8 * index(va.0, level));
            let e = phys.mem.read_u64(slot);
            if e & PTE_PRESENT == 0 {
                if !create {
                    return Ok(None);
                }
                let t = phys.alloc_frame()?;
                let mut flags = PTE_PRESENT | PTE_WRITE | PTE_ACCESSED;
                if user {
                    flags |= PTE_USER;
                }
                phys.mem.write_u64(slot, t.0 | flags);
                table = t;
            } else {
                debug_assert!(e & PTE_HUGE == 0, "huge pages are never created");
                table = PhysAddr(e & ADDR_MASK);
            }
        }
        Ok(Some(PhysAddr(table.0 + 8 * index(va.0, 0))))
    }

    /// Installs `pte` at `va`, returning the entry it replaced.
    pub fn map(&self, phys: &Physical, va: VirtAddr, pte: Pte) -> Result<Option<Pte>, OutOfFrames> {
        let user = pte.0 & PTE_USER != 0;
        let slot = self.leaf_slot(phys, va, true, user)?.expect("leaf slot exists after creation");
        let old = phys.mem.read_u64(slot);
        phys.mem.write_u64(slot, pte.0);
        Ok((old & PTE_PRESENT != 0).then_some(Pte(old)))
    }

    pub fn get(&self, phys: &Physical, va: VirtAddr) -> Option<Pte> {
        let slot = self.leaf_slot(phys, va, false, false).ok()??;
        let e = phys.mem.read_u64(slot);
        (e & PTE_PRESENT != 0).then_some(Pte(e))
    }

    /// Clears the entry at `va`, returning it.
    pub fn unmap(&self, phys: &Physical, va: VirtAddr) -> Option<Pte> {
        let slot = self.leaf_slot(phys, va, false, false).ok()??;
        let e = phys.mem.read_u64(slot);
        if e & PTE_PRESENT == 0 {
            return None;
        }
        phys.mem.write_u64(slot, 0);
        Some(Pte(e))
    }

    /// Calls `f(va, pte)` for each present user leaf in `[start, end)`, skipping empty tables.
    pub fn for_each_present(
        &self,
        phys: &Physical,
        start: VirtAddr,
        end: VirtAddr,
        f: &mut dyn FnMut(VirtAddr, Pte),
    ) {
        self.walk_range(phys, self.root, 3, 0, start.0, end.0, f);
    }

    #[allow(clippy::too_many_arguments)]
    fn walk_range(
        &self,
        phys: &Physical,
        table: PhysAddr,
        level: u32,
        base: u64,
        start: u64,
        end: u64,
        f: &mut dyn FnMut(VirtAddr, Pte),
    ) {
        let span = 1u64 << (12 + 9 * level);
        let top = if level == 3 { KERNEL_PML4_SLOT as u64 } else { 512 };
        for i in 0..top {
            let lo = base + i * span;
            let hi = lo + span;
            if hi <= start || lo >= end {
                continue;
            }
            let e = phys.mem.read_u64(PhysAddr(table.0 + 8 * i));
            if e & PTE_PRESENT == 0 {
                continue;
            }
            if level == 0 {
                f(VirtAddr(lo), Pte(e));
            } else {
                self.walk_range(phys, PhysAddr(e & ADDR_MASK), level - 1, lo, start, end, f);
            }
        }
    }

    /// Clears every present leaf in `[start, end)`, returning what was there.
    pub fn take_range(
        &self,
        phys: &Physical,
        start: VirtAddr,
        end: VirtAddr,
    ) -> Vec<(VirtAddr, Pte)> {
        let mut found = Vec::new();
        self.for_each_present(phys, start, end, &mut |va, pte| found.push((va, pte)));
        for (va, _) in &found {
            self.unmap(phys, *va);
        }
        found
    }

    /// Frees every user page-table page (not the leaves' frames: the caller owns those) and
    /// the root itself.
    pub fn destroy(self, phys: &Physical) {
        self.free_tables(phys, self.root, 3);
    }

    fn free_tables(&self, phys: &Physical, table: PhysAddr, level: u32) {
        if level > 0 {
            let top = if level == 3 { KERNEL_PML4_SLOT as u64 } else { 512 };
            for i in 0..top {
                let e = phys.mem.read_u64(PhysAddr(table.0 + 8 * i));
                if e & PTE_PRESENT != 0 {
                    self.free_tables(phys, PhysAddr(e & ADDR_MASK), level - 1);
                }
            }
        }
        phys.free_table(table);
    }
}

/// Number of pages in `[start, end)`.
pub fn pages(start: VirtAddr, end: VirtAddr) -> u64 {
    (end.0 - start.0) / PAGE_SIZE
}
