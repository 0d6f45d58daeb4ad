//! ACPI tables, for kernels that find CPUs and devices only through ACPI (Debian's, for one,
//! parses no MP table and announces no virtio-mmio devices from the command line): an RSDP
//! and XSDT, a hardware-reduced FADT, a MADT with every local APIC and the IOAPIC, and a DSDT
//! describing each virtio-mmio device (`LNRO0005`, its window and interrupt) and the legacy
//! devices (the UART and the i8042 with their ports and edge-triggered IRQs: a hardware-reduced
//! platform has no ISA interrupts by default). They sit in the reserved area below 1 MiB,
//! where Linux also scans for the RSDP.

use acpi_tables::Aml;
use acpi_tables::aml::{
    Device, EISAName, IO, Interrupt, Memory32Fixed, Name, Path, ResourceTemplate, Scope,
};
use acpi_tables::fadt::{FADTBuilder, Flags};
use acpi_tables::madt::{
    EnabledStatus, IoApic, LocalInterruptController, MADT, ProcessorLocalApic,
};
use acpi_tables::rsdp::Rsdp;
use acpi_tables::sdt::Sdt;
use acpi_tables::xsdt::XSDT;
use vm_memory::{Bytes, GuestAddress};

use crate::VmmError;
use crate::memory::GuestMem;
use crate::mptable::{APIC_ADDR, IOAPIC_ADDR};

/// Where the RSDP goes (inside the BIOS area Linux scans, reserved in the e820 map).
pub const RSDP_ADDR: u64 = 0xe_0000;
const END: u64 = 0x10_0000;
const OEM_ID: [u8; 6] = *b"RFENCE";
const OEM_TABLE: [u8; 8] = *b"RFMICROV";

fn bytes(table: &dyn Aml) -> Vec<u8> {
    let mut v = Vec::new();
    table.to_aml_bytes(&mut v);
    v
}

/// The DSDT: one device per virtio-mmio window, `(address, IRQ)`.
fn dsdt(devices: &[(u64, u32)]) -> Vec<u8> {
    let hid = Name::new("_HID".into(), &"LNRO0005");
    let uids: Vec<Name> =
        (0..devices.len()).map(|i| Name::new("_UID".into(), &(i as u32))).collect();
    let windows: Vec<Memory32Fixed> =
        devices.iter().map(|(addr, _)| Memory32Fixed::new(true, *addr as u32, 0x1000)).collect();
    let irqs: Vec<Interrupt> =
        devices.iter().map(|(_, irq)| Interrupt::new(true, true, false, false, *irq)).collect();
    let resources: Vec<ResourceTemplate> =
        windows.iter().zip(&irqs).map(|(w, i)| ResourceTemplate::new(vec![w, i])).collect();
    let crs: Vec<Name> = resources.iter().map(|r| Name::new("_CRS".into(), r)).collect();
    let paths: Vec<String> = (0..devices.len()).map(|i| format!("V{i:03}")).collect();
    let devs: Vec<Device> = paths
        .iter()
        .enumerate()
        .map(|(i, p)| Device::new(p.as_str().into(), vec![&hid, &uids[i], &crs[i]]))
        .collect();
    // The 16550 at 0x3f8 on IRQ 4, and the i8042 at 0x60/0x64 on IRQ 1.
    let (com_hid, com_uid) =
        (Name::new("_HID".into(), &EISAName::new("PNP0501")), Name::new("_UID".into(), &0u32));
    let (com_io, com_irq) =
        (IO::new(0x3f8, 0x3f8, 1, 8), Interrupt::new(true, true, false, false, 4));
    let com_res = ResourceTemplate::new(vec![&com_io, &com_irq]);
    let com_crs = Name::new("_CRS".into(), &com_res);
    let com = Device::new("COM1".into(), vec![&com_hid, &com_uid, &com_crs]);
    let kbd_hid = Name::new("_HID".into(), &EISAName::new("PNP0303"));
    let (kbd_data, kbd_cmd) = (IO::new(0x60, 0x60, 1, 1), IO::new(0x64, 0x64, 1, 1));
    let kbd_irq = Interrupt::new(true, true, false, false, 1);
    let kbd_res = ResourceTemplate::new(vec![&kbd_data, &kbd_cmd, &kbd_irq]);
    let kbd_crs = Name::new("_CRS".into(), &kbd_res);
    let kbd = Device::new("PS2_".into(), vec![&kbd_hid, &kbd_crs]);
    let mut children: Vec<&dyn Aml> = vec![&com, &kbd];
    children.extend(devs.iter().map(|d| d as &dyn Aml));
    let sb = Scope::new(Path::from("\\_SB_"), children);
    let mut table = Sdt::new(*b"DSDT", 36, 6, OEM_ID, OEM_TABLE, 1);
    table.append_slice(&bytes(&sb));
    table.as_slice().to_vec()
}

fn madt(vcpus: u8) -> Vec<u8> {
    let mut m = MADT::new(OEM_ID, OEM_TABLE, 1, LocalInterruptController::Address(APIC_ADDR));
    for id in 0..vcpus {
        m.add_structure(ProcessorLocalApic::new(id, id, EnabledStatus::Enabled));
    }
    m.add_structure(IoApic::new(vcpus, IOAPIC_ADDR, 0));
    let mut table = bytes(&m);
    // PCAT_COMPAT: there is an 8259 pair (KVM's), so IRQs 0-15 are ISA interrupts, edge
    // triggered and active high; without it Linux takes the UART's IRQ 4 for a level,
    // active-low line and never sees its interrupts.
    table[40] |= 1;
    table[9] = 0;
    table[9] = table.iter().fold(0u8, |a, b| a.wrapping_add(*b)).wrapping_neg();
    table
}

/// Writes the tables for `vcpus` processors and `devices`; returns the RSDP's address.
pub fn write(mem: &GuestMem, vcpus: u8, devices: &[(u64, u32)]) -> Result<u64, VmmError> {
    let align = |a: u64| a.next_multiple_of(8);
    let xsdt_at = align(RSDP_ADDR + Rsdp::len() as u64);
    // XSDT with two entries, then the tables it and the FADT point at.
    let fadt_at = align(xsdt_at + 36 + 2 * 8);
    let dsdt_at = align(fadt_at + acpi_tables::fadt::FADT::len() as u64);
    let dsdt = dsdt(devices);
    let madt_at = align(dsdt_at + dsdt.len() as u64);
    let madt = madt(vcpus);
    if madt_at + madt.len() as u64 > END {
        return Err(VmmError::Config("the ACPI tables do not fit below 1 MiB".into()));
    }
    let fadt = FADTBuilder::new(OEM_ID, OEM_TABLE, 1)
        .flag(Flags::HwReducedAcpi)
        .flag(Flags::PwrButton)
        .flag(Flags::SlpButton)
        .dsdt_64(dsdt_at)
        .finalize();
    let mut xsdt = XSDT::new(OEM_ID, OEM_TABLE, 1);
    xsdt.add_entry(fadt_at);
    xsdt.add_entry(madt_at);
    let rsdp = Rsdp::new(OEM_ID, xsdt_at);
    let err = |e: vm_memory::GuestMemoryError| VmmError::Memory(e.to_string());
    for (at, table) in [
        (RSDP_ADDR, bytes(&rsdp)),
        (xsdt_at, bytes(&xsdt)),
        (fadt_at, bytes(&fadt)),
        (dsdt_at, dsdt),
        (madt_at, madt),
    ] {
        mem.write_slice(&table, GuestAddress(at)).map_err(err)?;
    }
    Ok(RSDP_ADDR)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |a, x| a.wrapping_add(*x))
    }

    #[test]
    fn the_tables_are_found_and_check_out() {
        let mem = crate::memory::create(16 << 20).unwrap();
        let at = write(&mem, 2, &[(0xd000_0000, 5), (0xd000_1000, 6)]).unwrap();
        let mut rsdp = [0u8; 36];
        mem.read_slice(&mut rsdp, GuestAddress(at)).unwrap();
        assert_eq!(&rsdp[..8], b"RSD PTR ");
        assert_eq!(sum(&rsdp[..20]), 0);
        assert_eq!(sum(&rsdp), 0);
        let xsdt_at = u64::from_le_bytes(rsdp[24..32].try_into().unwrap());
        let read = |addr: u64| {
            let mut head = [0u8; 8];
            mem.read_slice(&mut head, GuestAddress(addr)).unwrap();
            let len = u32::from_le_bytes(head[4..8].try_into().unwrap()) as usize;
            let mut t = vec![0u8; len];
            mem.read_slice(&mut t, GuestAddress(addr)).unwrap();
            assert_eq!(sum(&t), 0, "{} checksum", String::from_utf8_lossy(&t[..4]));
            t
        };
        let xsdt = read(xsdt_at);
        let entries: Vec<u64> =
            xsdt[36..].chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
        let sigs: Vec<Vec<u8>> = entries.iter().map(|e| read(*e)[..4].to_vec()).collect();
        assert_eq!(sigs, [b"FACP".to_vec(), b"APIC".to_vec()]);
        let madt = read(entries[1]);
        // Two local APICs (type 0) and an IOAPIC (type 1) after the 44-byte header.
        let kinds: Vec<u8> = {
            let mut k = Vec::new();
            let mut at = 44;
            while at < madt.len() {
                k.push(madt[at]);
                at += madt[at + 1] as usize;
            }
            k
        };
        assert_eq!(kinds, [0, 0, 1]);
        assert_eq!(madt[40] & 1, 1, "PCAT_COMPAT");
        let fadt = read(entries[0]);
        let x_dsdt = u64::from_le_bytes(fadt[140..148].try_into().unwrap());
        let dsdt = read(x_dsdt);
        let text = String::from_utf8_lossy(&dsdt);
        assert!(text.contains("LNRO0005") && text.contains("V001"), "{text}");
    }
}
