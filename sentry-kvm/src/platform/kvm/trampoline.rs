//! The few bytes of CPL0 state the guest needs: GDT, TSS, IDT and entry stubs.
//!
//! Every entry stub is a single `out` followed by `hlt`: the `out` exits to the Sentry, which
//! reads the user state, handles the event and sets the registers for the return to CPL3 itself.
//! No other guest CPL0 instruction ever runs (CPL0 code is instruction-emulated on some hosts).

use super::layout::*;
use crate::mm::page_table::{PTE_ACCESSED, PTE_PRESENT, PTE_USER, PTE_WRITE, Pte};
use crate::mm::{PAGE_SIZE, PhysAddr, Physical};

/// `out imm8, al` to the stub's port, then `hlt` should anything resume here.
fn stub_bytes(port: u8) -> [u8; 3] {
    [0xe6, port, 0xf4]
}

const PORT_SYSCALL: u8 = 0xfe;

/// Writes the region's page tables, IDT and stubs. Per-vCPU areas are written by `init_cpu`.
pub fn init_region(phys: &Physical) {
    let mem = &phys.mem;
    // PDPT[0] -> PD; PD[i] -> PT i; PT entries map the region page by page.
    // Upper levels allow user access so that the one user-visible leaf (the syscall stub) is
    // reachable; every other leaf is supervisor-only.
    let table_flags = PTE_PRESENT | PTE_WRITE | PTE_ACCESSED | PTE_USER;
    mem.write_u64(KERNEL_PDPT, KERNEL_PD.0 | table_flags);
    let pts = REGION_SIZE / (2 << 20);
    for i in 0..pts {
        let pt = PhysAddr(KERNEL_PT.0 + i * PAGE_SIZE);
        mem.write_u64(PhysAddr(KERNEL_PD.0 + 8 * i), pt.0 | table_flags);
    }
    for page in 0..REGION_SIZE / PAGE_SIZE {
        let frame = PhysAddr(page * PAGE_SIZE);
        let exec = frame == STUBS || frame == SYSCALL_STUB;
        let write = !exec && frame != IDT;
        let mut pte = Pte::kernel(frame, write, exec);
        if frame == SYSCALL_STUB {
            pte.0 |= PTE_USER;
        }
        mem.write_u64(PhysAddr(KERNEL_PT.0 + 8 * page), pte.0);
    }

    for v in 0..EXCEPTION_VECTORS {
        mem.write(PhysAddr(STUBS.0 + v * STUB_STRIDE), &stub_bytes(v as u8));
        // Breakpoint and overflow may be raised by `int3`/`into` from user mode.
        let dpl = if v == 3 || v == 4 { 3 } else { 0 };
        let (lo, hi) = idt_gate(exception_stub(v), dpl);
        mem.write_u64(PhysAddr(IDT.0 + 16 * v), lo);
        mem.write_u64(PhysAddr(IDT.0 + 16 * v + 8), hi);
    }
    mem.write(SYSCALL_STUB, &stub_bytes(PORT_SYSCALL));
}

/// A 64-bit interrupt gate to `target` in the kernel code segment.
fn idt_gate(target: u64, dpl: u64) -> (u64, u64) {
    let lo = (target & 0xffff)
        | (u64::from(KERNEL_CS) << 16)
        | ((0x8e | (dpl << 5)) << 40)
        | (((target >> 16) & 0xffff) << 48);
    (lo, target >> 32)
}

/// Writes the GDT and TSS of vCPU `cpu`.
pub fn init_cpu(phys: &Physical, cpu: u64) {
    let area = cpu_area(cpu);
    let gdt = PhysAddr(area.0 + GDT_OFFSET);
    let entries: [(u16, u64); 4] = [
        (KERNEL_CS, 0x00af_9b00_0000_ffff),
        (KERNEL_DS, 0x00cf_9300_0000_ffff),
        (USER_DS, 0x00cf_f300_0000_ffff),
        (USER_CS, 0x00af_fb00_0000_ffff),
    ];
    for (sel, desc) in entries {
        phys.mem.write_u64(PhysAddr(gdt.0 + (sel & !7) as u64), desc);
    }
    let tss_virt = virt(area) + TSS_OFFSET;
    let limit = 0x67u64;
    let lo = limit
        | ((tss_virt & 0xff_ffff) << 16)
        | (0x8b << 40) // present, busy 64-bit TSS
        | (((tss_virt >> 24) & 0xff) << 56);
    phys.mem.write_u64(PhysAddr(gdt.0 + u64::from(TSS_SELECTOR)), lo);
    phys.mem.write_u64(PhysAddr(gdt.0 + u64::from(TSS_SELECTOR) + 8), tss_virt >> 32);
    // TSS: RSP0 at offset 4, I/O map base past the limit (no I/O permission bitmap).
    let tss = PhysAddr(area.0 + TSS_OFFSET);
    phys.mem.write(PhysAddr(tss.0 + 4), &cpu_stack_top(cpu).to_le_bytes());
    phys.mem.write(PhysAddr(tss.0 + 0x66), &0x68u16.to_le_bytes());
}

/// The GDT's virtual base and limit for vCPU `cpu`.
pub fn gdt_of(cpu: u64) -> (u64, u16) {
    (virt(cpu_area(cpu)) + GDT_OFFSET, TSS_SELECTOR + 15)
}

pub fn tss_of(cpu: u64) -> u64 {
    virt(cpu_area(cpu)) + TSS_OFFSET
}

/// What an exit at `rip` in the stub page means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StubExit {
    Syscall,
    Exception(u8),
}

/// Identifies the stub that exited, given the RIP KVM reports for the `out` (some hosts report
/// the instruction, others the next one). Anything else is not one of our stubs, e.g. an `out`
/// executed by application code on a host that lets CPL3 port I/O exit.
pub fn classify_exit(rip: u64) -> Option<StubExit> {
    let base = virt(STUBS);
    let matches = |stub: u64| rip == stub || rip == stub + 2;
    if matches(syscall_stub()) {
        return Some(StubExit::Syscall);
    }
    if rip < base || rip >= base + EXCEPTION_VECTORS * STUB_STRIDE {
        return None;
    }
    let v = (rip - base) / STUB_STRIDE;
    matches(exception_stub(v)).then_some(StubExit::Exception(v as u8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stub_rips_are_classified_and_others_rejected() {
        assert_eq!(classify_exit(syscall_stub()), Some(StubExit::Syscall));
        assert_eq!(classify_exit(syscall_stub() + 2), Some(StubExit::Syscall));
        assert_eq!(classify_exit(exception_stub(14) + 2), Some(StubExit::Exception(14)));
        assert_eq!(classify_exit(exception_stub(14) + 1), None);
        assert_eq!(classify_exit(0x401000), None);
    }

    #[test]
    fn idt_gate_encodes_target() {
        let (lo, hi) = idt_gate(0xffff_ff80_1234_5678, 3);
        assert_eq!(lo & 0xffff, 0x5678);
        assert_eq!((lo >> 48) & 0xffff, 0x1234);
        assert_eq!(hi, 0xffff_ff80);
        assert_eq!((lo >> 40) & 0xff, 0xee);
    }
}
