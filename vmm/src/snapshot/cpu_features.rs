//! A snapshot's vCPUs promised their guest CPU features through CPUID; a host whose KVM
//! cannot offer one of them must refuse the restore (the guest would fault on the first
//! instruction using it, long after the restore "worked").

use kvm_bindings::kvm_cpuid_entry2;

use super::SnapshotError;

/// Feature registers checked: (leaf, subleaf, register name, bits KVM changes at run time
/// and so may differ from what it reports as supported).
const FEATURES: &[(u32, u32, &str, u32)] = &[
    // OSXSAVE follows the guest's CR4; the hypervisor bit is this VMM's own.
    (1, 0, "ecx", 1 << 27 | 1 << 31),
    (1, 0, "edx", 0),
    (7, 0, "ebx", 0),
    (7, 0, "ecx", 1 << 4), // OSPKE follows the guest's CR4
    (7, 0, "edx", 0),
    (0xd, 1, "eax", 0),
    (0x8000_0001, 0, "ecx", 0),
    (0x8000_0001, 0, "edx", 0),
];

fn register(e: &kvm_cpuid_entry2, name: &str) -> u32 {
    match name {
        "eax" => e.eax,
        "ebx" => e.ebx,
        "ecx" => e.ecx,
        _ => e.edx,
    }
}

fn find(entries: &[kvm_cpuid_entry2], leaf: u32, subleaf: u32) -> Option<&kvm_cpuid_entry2> {
    entries.iter().find(|e| e.function == leaf && e.index == subleaf)
}

/// Refuses `snapshot` CPUID that sets a feature bit `supported` (KVM's) lacks.
pub fn check(
    snapshot: &[kvm_cpuid_entry2],
    supported: &[kvm_cpuid_entry2],
) -> Result<(), SnapshotError> {
    let mut missing = Vec::new();
    for &(leaf, subleaf, reg, dynamic) in FEATURES {
        let Some(wanted) = find(snapshot, leaf, subleaf) else { continue };
        let have = find(supported, leaf, subleaf).map(|e| register(e, reg)).unwrap_or(0);
        let lacking = register(wanted, reg) & !have & !dynamic;
        if lacking != 0 {
            missing.push(format!("leaf {leaf:#x}.{subleaf} {reg} bits {lacking:#x}"));
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(SnapshotError::Incompatible(format!(
            "its CPU has features this host's KVM does not offer ({})",
            missing.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(function: u32, ecx: u32) -> kvm_cpuid_entry2 {
        kvm_cpuid_entry2 { function, ecx, ..Default::default() }
    }

    #[test]
    fn a_feature_the_host_lacks_is_refused_and_dynamic_bits_are_not() {
        let host = [leaf(1, 0b1010), leaf(7, 0)];
        assert!(check(&[leaf(1, 0b1000)], &host).is_ok());
        assert!(check(&[leaf(1, 0b1000 | 1 << 27)], &host).is_ok(), "OSXSAVE is the guest's");
        let e = check(&[leaf(1, 0b0100), leaf(7, 1 << 5)], &host).unwrap_err().to_string();
        assert!(e.contains("leaf 0x1.0 ecx bits 0x4") && e.contains("leaf 0x7.0 ecx"), "{e}");
    }
}
