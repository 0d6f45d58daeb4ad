//! Guest-physical and guest-virtual layout of the Sentry's own (CPL0) region.
//!
//! The region holds only what the CPU needs to enter the Sentry: page tables for the region,
//! one IDT, the entry stubs, and a GDT + TSS + exception stack per vCPU. It is mapped
//! supervisor-only in the top slot of every address space, so application code can neither
//! read nor execute it.

use crate::mm::{PAGE_SIZE, PhysAddr};

/// Guest-virtual address at which guest-physical 0 of the region is mapped (PML4 slot 511).
pub const KERNEL_VIRT_BASE: u64 = 0xffff_ff80_0000_0000;
/// Size of the region at the bottom of guest-physical memory.
pub const REGION_SIZE: u64 = 4 << 20;

pub const KERNEL_PDPT: PhysAddr = PhysAddr(0x0000);
pub const KERNEL_PD: PhysAddr = PhysAddr(0x1000);
/// Page tables covering the region (REGION_SIZE / 2 MiB of them).
pub const KERNEL_PT: PhysAddr = PhysAddr(0x2000);
pub const IDT: PhysAddr = PhysAddr(0x4000);
pub const STUBS: PhysAddr = PhysAddr(0x5000);
/// The `syscall` entry stub has a page of its own: some nested hosts fetch it with CPL3
/// privileges, so it is mapped user-executable (it holds nothing but `out; hlt`).
pub const SYSCALL_STUB: PhysAddr = PhysAddr(0x6000);
/// First per-vCPU area; each vCPU has two pages: GDT + TSS, then its exception stack.
pub const CPU_AREAS: PhysAddr = PhysAddr(0x8000);
pub const CPU_AREA_SIZE: u64 = 2 * PAGE_SIZE;
pub const GDT_OFFSET: u64 = 0;
pub const TSS_OFFSET: u64 = 0x100;

/// Bytes between exception stubs; stub `v` handles vector `v`.
pub const STUB_STRIDE: u64 = 16;
/// Number of IDT vectors with stubs (the architectural exceptions).
pub const EXCEPTION_VECTORS: u64 = 32;

/// Segment selectors, laid out as Linux does so that values in signal frames match.
pub const KERNEL_CS: u16 = 0x10;
pub const KERNEL_DS: u16 = 0x18;
pub const USER32_CS: u16 = 0x23;
pub const USER_DS: u16 = 0x2b;
pub const USER_CS: u16 = 0x33;
pub const TSS_SELECTOR: u16 = 0x40;

pub fn virt(p: PhysAddr) -> u64 {
    KERNEL_VIRT_BASE + p.0
}

/// How many vCPUs the region has room for.
pub const fn max_cpus() -> u64 {
    (REGION_SIZE - CPU_AREAS.0) / CPU_AREA_SIZE
}

pub fn cpu_area(cpu: u64) -> PhysAddr {
    PhysAddr(CPU_AREAS.0 + cpu * CPU_AREA_SIZE)
}

/// Top of the exception stack of `cpu` (virtual).
pub fn cpu_stack_top(cpu: u64) -> u64 {
    virt(cpu_area(cpu)) + CPU_AREA_SIZE
}

pub fn syscall_stub() -> u64 {
    virt(SYSCALL_STUB)
}

pub fn exception_stub(vector: u64) -> u64 {
    virt(STUBS) + vector * STUB_STRIDE
}
