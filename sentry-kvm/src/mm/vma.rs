//! Virtual memory areas: what each range of an address space is and may do.

use std::fmt;
use std::sync::Arc;

use crate::mm::mappable::Mappable;

pub const PROT_READ: u32 = 1;
pub const PROT_WRITE: u32 = 2;
pub const PROT_EXEC: u32 = 4;

/// Access rights of a mapping. x86 cannot express write-only or execute-only pages: both imply
/// read, as on Linux.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Prot {
    pub read: bool,
    pub write: bool,
    pub exec: bool,
}

impl Prot {
    pub const NONE: Prot = Prot { read: false, write: false, exec: false };
    pub const RW: Prot = Prot { read: true, write: true, exec: false };
    pub const RX: Prot = Prot { read: true, write: false, exec: true };
    pub const R: Prot = Prot { read: true, write: false, exec: false };

    pub fn from_bits(bits: u32) -> Prot {
        Prot {
            read: bits & (PROT_READ | PROT_WRITE | PROT_EXEC) != 0,
            write: bits & PROT_WRITE != 0,
            exec: bits & PROT_EXEC != 0,
        }
    }

    pub fn any(self) -> bool {
        self.read || self.write || self.exec
    }

    /// Whether `self` lacks a right that `old` had (entries must then be invalidated).
    pub fn is_downgrade_from(self, old: Prot) -> bool {
        (old.read && !self.read) || (old.write && !self.write) || (old.exec && !self.exec)
    }
}

/// What /proc/self/maps calls an area.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VmaName {
    None,
    Heap,
    Stack,
    /// The vDSO's code and its data page.
    Vdso,
    Vvar,
    File(String),
}

#[derive(Clone)]
pub struct Vma {
    pub start: u64,
    pub end: u64,
    pub prot: Prot,
    /// Whether PROT_WRITE may be added (false for shared mappings of read-only files).
    pub may_write: bool,
    pub shared: bool,
    pub growsdown: bool,
    /// Backing pages; None for private anonymous memory.
    pub backing: Option<Arc<dyn Mappable>>,
    /// Page index in `backing` of `start`.
    pub pgoff: u64,
    pub name: VmaName,
}

impl Vma {
    pub fn anon(start: u64, end: u64, prot: Prot, name: VmaName) -> Vma {
        Vma {
            start,
            end,
            prot,
            may_write: true,
            shared: false,
            growsdown: false,
            backing: None,
            pgoff: 0,
            name,
        }
    }

    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }

    /// The backing page index for `addr`.
    pub fn page_index(&self, addr: u64) -> u64 {
        self.pgoff + (addr - self.start) / crate::mm::PAGE_SIZE
    }

    /// Splits at `addr` (inside the area), returning the upper part.
    pub fn split_off(&mut self, addr: u64) -> Vma {
        debug_assert!(self.start < addr && addr < self.end);
        let mut hi = self.clone();
        hi.start = addr;
        hi.pgoff = self.page_index(addr);
        self.end = addr;
        hi
    }

    /// Whether `next` (starting where this ends) can be merged into this area.
    pub fn mergeable_with(&self, next: &Vma) -> bool {
        self.end == next.start
            && self.prot == next.prot
            && self.may_write == next.may_write
            && self.shared == next.shared
            && self.growsdown == next.growsdown
            && self.name == next.name
            && match (&self.backing, &next.backing) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b) && self.page_index(self.end) == next.pgoff,
                _ => false,
            }
    }
}

impl fmt::Debug for Vma {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}-{:#x} {:?} {:?}", self.start, self.end, self.prot, self.name)
    }
}
