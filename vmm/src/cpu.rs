//! vCPUs: 64-bit entry state (flat segments, identity-mapped page tables, long mode) and the
//! run loop that turns KVM exits into bus accesses or the end of the machine.

use std::sync::{Arc, Mutex};

use kvm_bindings::{kvm_regs, kvm_segment};
use kvm_ioctls::{VcpuExit, VcpuFd};
use vm_memory::{Bytes, GuestAddress};

use crate::VmmError;
use crate::bus::Bus;
use crate::exit::{ExitReason, ExitSignal};
use crate::layout;
use crate::memory::GuestMem;

const GDT: [u64; 4] = [
    0,                     // null
    0x00af_9a00_0000_ffff, // 0x08: 64-bit code
    0x00cf_9200_0000_ffff, // 0x10: data
    0x00cf_9a00_0000_ffff, // 0x18: 32-bit code (PVH entry)
];

fn segment(selector: u16, code: bool, long: bool) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        type_: if code { 0xb } else { 0x3 },
        present: 1,
        dpl: 0,
        db: u8::from(!(code && long)),
        s: 1,
        l: u8::from(code && long),
        g: 1,
        ..Default::default()
    }
}

/// Our GDT, no IDT, and flat code (64-bit when `long`) and data segments.
fn flat_segments(s: &mut kvm_bindings::kvm_sregs, long: bool) {
    s.gdt.base = layout::GDT_ADDR;
    s.gdt.limit = (GDT.len() * 8 - 1) as u16;
    s.idt.base = 0;
    s.idt.limit = 0;
    s.cs = segment(if long { 0x08 } else { 0x18 }, true, long);
    let data = segment(0x10, false, long);
    (s.ds, s.es, s.fs, s.gs, s.ss) = (data, data, data, data, data);
}

/// Puts `vcpu` at a PVH entry point: 32-bit protected mode, paging off, `ebx` = start info.
pub fn setup_pvh(vcpu: &VcpuFd, entry: u64, start_info: u64) -> Result<(), VmmError> {
    let mut s = vcpu.get_sregs()?;
    flat_segments(&mut s, false);
    s.cr0 = (s.cr0 | 1) & !(1 << 31); // PE on, PG off
    s.cr4 = 0;
    s.efer = 0;
    vcpu.set_sregs(&s)?;
    let regs = kvm_regs { rip: entry, rbx: start_info, rflags: 0x2, ..Default::default() };
    vcpu.set_regs(&regs)?;
    Ok(())
}

/// Writes the GDT and identity page tables (the first 4 GiB in 2 MiB pages, so that the
/// device gap is addressable too) into guest memory.
pub fn write_boot_tables(mem: &GuestMem) -> Result<(), VmmError> {
    let w = |addr: u64, v: u64| {
        mem.write_obj(v, GuestAddress(addr)).map_err(|e| VmmError::Memory(e.to_string()))
    };
    for (i, d) in GDT.iter().enumerate() {
        w(layout::GDT_ADDR + 8 * i as u64, *d)?;
    }
    w(layout::PML4_ADDR, layout::PDPT_ADDR | 0x3)?;
    for gib in 0..layout::PD_TABLES {
        let pd = layout::PD_ADDR + gib * 4096;
        w(layout::PDPT_ADDR + 8 * gib, pd | 0x3)?;
        for i in 0..512u64 {
            // Present, writable, 2 MiB page.
            w(pd + 8 * i, ((gib << 30) | (i << 21)) | 0x83)?;
        }
    }
    Ok(())
}

/// Puts `vcpu` in 64-bit mode at `entry` with the tables of [`write_boot_tables`]; `rsi`
/// carries a pointer for the program (Linux's boot params).
pub fn setup_long_mode(vcpu: &VcpuFd, entry: u64, rsi: u64) -> Result<(), VmmError> {
    let mut s = vcpu.get_sregs()?;
    flat_segments(&mut s, true);
    s.cr3 = layout::PML4_ADDR;
    s.cr4 |= 1 << 5; // PAE
    s.cr0 |= 1 | (1 << 31); // PE, PG
    s.efer |= (1 << 8) | (1 << 10); // LME, LMA
    vcpu.set_sregs(&s)?;
    let regs = kvm_regs {
        rip: entry,
        rsp: layout::BOOT_STACK,
        rbp: layout::BOOT_STACK,
        rsi,
        rflags: 0x2,
        ..Default::default()
    };
    vcpu.set_regs(&regs)?;
    Ok(())
}

/// Lets KVM finish an instruction whose port or MMIO access the VMM just served (it does on
/// the next KVM_RUN), without entering the guest: the registers are then whole.
fn complete_pending_access(vcpu: &Mutex<VcpuFd>) {
    let mut vcpu = vcpu.lock().unwrap_or_else(|e| e.into_inner());
    vcpu.set_kvm_immediate_exit(1);
    let _ = vcpu.run();
    vcpu.set_kvm_immediate_exit(0);
}

/// Runs `vcpu` until the machine ends (or this vCPU finds a reason to end it). The vCPU is
/// locked only while this thread uses it: a paused machine's snapshot reads it meanwhile.
pub fn run(
    vcpu: Arc<Mutex<VcpuFd>>,
    pio: Bus,
    mmio: Bus,
    exit: Arc<ExitSignal>,
    gate: &crate::pause::PauseGate,
) {
    use crate::metrics::{METRICS, inc};
    crate::metrics::mark_once(&METRICS.vcpu_start_us);
    loop {
        gate.pass(&exit, || complete_pending_access(&vcpu));
        if exit.raised() {
            return;
        }
        let mut vcpu = vcpu.lock().unwrap_or_else(|e| e.into_inner());
        let reason = match vcpu.run() {
            Ok(VcpuExit::IoOut(port, data)) => {
                inc(&METRICS.exits_io_out, 1);
                // Unknown ports are probed by guests; writes there go nowhere, as on hardware.
                pio.write(u64::from(port), data);
                continue;
            }
            Ok(VcpuExit::IoIn(port, data)) => {
                inc(&METRICS.exits_io_in, 1);
                if !pio.read(u64::from(port), data) {
                    data.fill(0xff);
                }
                continue;
            }
            Ok(VcpuExit::MmioRead(addr, data)) => {
                inc(&METRICS.exits_mmio_read, 1);
                if mmio.read(addr, data) {
                    continue;
                }
                ExitReason::GuestFault(format!("read of unmapped MMIO at {addr:#x}"))
            }
            Ok(VcpuExit::MmioWrite(addr, data)) => {
                inc(&METRICS.exits_mmio_write, 1);
                if mmio.write(addr, data) {
                    continue;
                }
                ExitReason::GuestFault(format!("write to unmapped MMIO at {addr:#x}"))
            }
            Ok(VcpuExit::Hlt) => ExitReason::Halt,
            Ok(VcpuExit::Shutdown) => ExitReason::GuestFault("triple fault".into()),
            Ok(VcpuExit::SystemEvent(kind, _)) => match kind {
                kvm_bindings::KVM_SYSTEM_EVENT_RESET => ExitReason::Reset,
                _ => ExitReason::Shutdown,
            },
            Ok(VcpuExit::InternalError) => {
                let failure = crate::emulation::failure(&mut vcpu);
                if crate::emulation::finish(&vcpu, &failure) {
                    inc(&METRICS.exits_other, 1);
                    tracing::debug!("finished an instruction KVM could not emulate ({failure})");
                    continue;
                }
                ExitReason::GuestFault(format!(
                    "KVM could not emulate a guest instruction ({failure})"
                ))
            }
            Ok(VcpuExit::FailEntry(reason, cpu)) => {
                ExitReason::GuestFault(format!("vCPU {cpu} failed to enter: reason {reason:#x}"))
            }
            Ok(VcpuExit::Intr) => {
                inc(&METRICS.exits_other, 1);
                continue;
            }
            Ok(other) => ExitReason::GuestFault(format!("unexpected exit {other:?}")),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => continue,
            Err(e) => ExitReason::VmmError(format!("KVM_RUN: {e}")),
        };
        exit.raise(reason);
        return;
    }
}
