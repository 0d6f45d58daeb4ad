//! The Intel MultiProcessor table, so that Linux finds every vCPU (and the IOAPIC) without
//! ACPI: a floating pointer and a configuration table with processor, bus, IOAPIC and
//! interrupt entries, placed in the reserved area below 1 MiB.

use vm_memory::{Bytes, GuestAddress};

use crate::VmmError;
use crate::layout;
use crate::memory::GuestMem;

pub const IOAPIC_ADDR: u32 = 0xfec0_0000;
pub const APIC_ADDR: u32 = 0xfee0_0000;
const APIC_VERSION: u8 = 0x14;
/// Legacy IRQs routed through the IOAPIC (ISA 0-15, and more for virtio-mmio devices).
const IRQS: u8 = 24;

fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b)).wrapping_neg()
}

/// The table bytes for `vcpus` processors, to be placed at `at`.
pub fn build(vcpus: u8, at: u64) -> Result<Vec<u8>, VmmError> {
    if vcpus == 0 || vcpus >= 254 {
        return Err(VmmError::Config(format!("{vcpus} vCPUs: the MP table holds 1 to 253")));
    }
    let ioapic_id = vcpus + 1;
    let mut entries = Vec::new();
    let mut count = 0u16;
    for id in 0..vcpus {
        // Processor: type 0, APIC id, version, enabled (+ BSP for the first), signature.
        let flags = 1 | if id == 0 { 2 } else { 0 };
        entries.extend_from_slice(&[0, id, APIC_VERSION, flags]);
        entries.extend_from_slice(&0x600u32.to_le_bytes()); // family 6
        entries.extend_from_slice(&0x201u32.to_le_bytes()); // FPU, APIC
        entries.extend_from_slice(&[0; 8]);
        count += 1;
    }
    // Bus 0, ISA.
    entries.extend_from_slice(&[1, 0]);
    entries.extend_from_slice(b"ISA   ");
    count += 1;
    // IOAPIC: type 2, id, version, enabled, address.
    entries.extend_from_slice(&[2, ioapic_id, APIC_VERSION, 1]);
    entries.extend_from_slice(&IOAPIC_ADDR.to_le_bytes());
    count += 1;
    for irq in 0..IRQS {
        // I/O interrupt: type 3, INT, default polarity/trigger, bus 0 irq -> ioapic pin.
        entries.extend_from_slice(&[3, 0, 0, 0, 0, irq, ioapic_id, irq]);
        count += 1;
    }
    // Local interrupts: ExtINT on LINT0, NMI on LINT1, for all local APICs.
    entries.extend_from_slice(&[4, 3, 0, 0, 0, 0, 0xff, 0]);
    entries.extend_from_slice(&[4, 1, 0, 0, 0, 0, 0xff, 1]);
    count += 2;

    let config_at = at + 16;
    let mut config = Vec::new();
    config.extend_from_slice(b"PCMP");
    let len = (44 + entries.len()) as u16;
    config.extend_from_slice(&len.to_le_bytes());
    config.push(4); // spec revision 1.4
    config.push(0); // checksum, below
    config.extend_from_slice(b"RINGFNCE");
    config.extend_from_slice(b"MICROVM     ");
    config.extend_from_slice(&0u32.to_le_bytes()); // OEM table
    config.extend_from_slice(&0u16.to_le_bytes());
    config.extend_from_slice(&count.to_le_bytes());
    config.extend_from_slice(&APIC_ADDR.to_le_bytes());
    config.extend_from_slice(&[0; 4]); // extended table length, checksum, reserved
    config.extend_from_slice(&entries);
    config[7] = checksum(&config);

    let mut fp = Vec::with_capacity(16);
    fp.extend_from_slice(b"_MP_");
    fp.extend_from_slice(&(config_at as u32).to_le_bytes());
    fp.extend_from_slice(&[1, 4, 0, 0, 0, 0, 0, 0]); // length 16 bytes, rev 1.4, checksum
    fp[10] = checksum(&fp);
    fp.extend_from_slice(&config);
    Ok(fp)
}

/// Writes the table for `vcpus` processors into guest memory.
pub fn write(mem: &GuestMem, vcpus: u8) -> Result<(), VmmError> {
    let bytes = build(vcpus, layout::MPTABLE_START)?;
    if layout::MPTABLE_START + bytes.len() as u64 > layout::LOAD_ADDR {
        return Err(VmmError::Config("the MP table does not fit below 1 MiB".into()));
    }
    mem.write_slice(&bytes, GuestAddress(layout::MPTABLE_START))
        .map_err(|e| VmmError::Memory(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_hold_and_every_vcpu_is_listed() {
        for n in [1u8, 2, 8, 64] {
            let t = build(n, layout::MPTABLE_START).unwrap();
            assert_eq!(&t[..4], b"_MP_");
            assert_eq!(t[..16].iter().fold(0u8, |a, b| a.wrapping_add(*b)), 0);
            let config = &t[16..];
            assert_eq!(&config[..4], b"PCMP");
            let len = u16::from_le_bytes([config[4], config[5]]) as usize;
            assert_eq!(len, config.len());
            assert_eq!(config.iter().fold(0u8, |a, b| a.wrapping_add(*b)), 0);
            let processors = (0..n as usize).filter(|i| config[44 + 20 * i] == 0).count();
            assert_eq!(processors, n as usize);
            // Only the first is the bootstrap processor.
            assert_eq!(config[44 + 3] & 2, 2);
        }
        assert!(build(0, 0).is_err() && build(254, 0).is_err());
    }
}
