//! CPUID for the guest: KVM's supported set, normalised per vCPU (APIC ids, topology) and then
//! masked by a CPU template (JSON) — needed on hosts whose KVM cannot emulate some features.

use kvm_bindings::{CpuId, kvm_cpuid_entry2};
use serde::Deserialize;

use crate::VmmError;

/// Which CPUID register a modifier changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Register {
    Eax,
    Ebx,
    Ecx,
    Edx,
}

/// Clears, then sets bits of one register of one leaf (all subleaves unless given).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Modifier {
    pub leaf: u32,
    #[serde(default)]
    pub subleaf: Option<u32>,
    pub register: Register,
    #[serde(default)]
    pub clear: u32,
    #[serde(default)]
    pub set: u32,
}

/// A CPU template: `{"cpuid_modifiers": [{"leaf": 1, "register": "ecx", "clear": 8192}]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    #[serde(default)]
    pub cpuid_modifiers: Vec<Modifier>,
}

impl Template {
    pub fn from_json(text: &str) -> Result<Template, VmmError> {
        serde_json::from_str(text).map_err(|e| VmmError::Config(format!("CPU template: {e}")))
    }

    /// What this project's nested development hosts need (see docs): no CMPXCHG16B, XSAVE,
    /// POPCNT or SMAP.
    pub fn nested_host() -> Template {
        let m = |leaf, subleaf, register, bit: u32| Modifier {
            leaf,
            subleaf,
            register,
            clear: 1 << bit,
            set: 0,
        };
        Template {
            cpuid_modifiers: vec![
                m(1, None, Register::Ecx, 13),    // CX16
                m(1, None, Register::Ecx, 26),    // XSAVE
                m(1, None, Register::Ecx, 23),    // POPCNT
                m(7, Some(0), Register::Ebx, 20), // SMAP
            ],
        }
    }
}

fn reg(e: &mut kvm_cpuid_entry2, r: Register) -> &mut u32 {
    match r {
        Register::Eax => &mut e.eax,
        Register::Ebx => &mut e.ebx,
        Register::Ecx => &mut e.ecx,
        Register::Edx => &mut e.edx,
    }
}

/// Applies the per-vCPU facts and `template` to a copy of `supported`.
pub fn for_vcpu(supported: &CpuId, id: u8, vcpus: u8, template: &Template) -> CpuId {
    let mut cpuid = supported.clone();
    for e in cpuid.as_mut_slice() {
        match e.function {
            1 => {
                // Initial APIC id, logical processor count; the hypervisor bit.
                e.ebx = (e.ebx & 0x0000_ffff) | (u32::from(id) << 24) | (u32::from(vcpus) << 16);
                e.ecx |= 1 << 31;
            }
            0xb => {
                // x2APIC topology: each vCPU its own core.
                e.edx = u32::from(id);
            }
            _ => {}
        }
        for m in &template.cpuid_modifiers {
            if m.leaf == e.function && m.subleaf.is_none_or(|s| s == e.index) {
                let r = reg(e, m.register);
                *r = (*r & !m.clear) | m.set;
            }
        }
    }
    cpuid
}

/// Starts the vCPU with every XSAVE feature its CPUID offers enabled in XCR0, then sets the
/// CPUID again so that leaf 0xD's EBX (the XSAVE area size for the current XCR0) is that of
/// those features: KVM recomputes it only when XCR0 changes outside x87/SSE/AVX, so a guest
/// enabling AVX itself would otherwise read the size for x87/SSE alone (Linux then warns
/// "XSAVE consistency problem"). Nothing to do without XSAVE.
pub fn enable_xsave_features(
    vcpu: &kvm_ioctls::VcpuFd,
    cpuid: &CpuId,
) -> Result<(), kvm_ioctls::Error> {
    let entries = cpuid.as_slice();
    let xsave = entries.iter().any(|e| e.function == 1 && e.ecx & (1 << 26) != 0);
    let Some(leaf) = entries.iter().find(|e| e.function == 0xd && e.index == 0) else {
        return Ok(());
    };
    if !xsave {
        return Ok(());
    }
    let mut xcrs = kvm_bindings::kvm_xcrs { nr_xcrs: 1, ..Default::default() };
    xcrs.xcrs[0].xcr = 0;
    xcrs.xcrs[0].value = u64::from(leaf.eax) | (u64::from(leaf.edx) << 32);
    if let Err(e) = vcpu.set_xcrs(&xcrs) {
        // A host that refuses (e.g. masks AVX in the template but not in leaf 0xD) keeps the
        // default XCR0; the guest then sees KVM's own EBX.
        tracing::debug!("XCR0 {:#x}: {e}", xcrs.xcrs[0].value);
        return Ok(());
    }
    vcpu.set_cpuid2(cpuid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn supported() -> CpuId {
        let entries = [
            kvm_cpuid_entry2 { function: 1, ecx: u32::MAX, ebx: 0x0001_0800, ..Default::default() },
            kvm_cpuid_entry2 { function: 7, index: 0, ebx: u32::MAX, ..Default::default() },
            kvm_cpuid_entry2 { function: 7, index: 1, ebx: u32::MAX, ..Default::default() },
        ];
        CpuId::from_entries(&entries).unwrap()
    }

    #[test]
    fn templates_mask_features_and_vcpus_get_their_ids() {
        let c = for_vcpu(&supported(), 3, 4, &Template::nested_host());
        let e = c.as_slice();
        assert_eq!(e[0].ecx & (1 << 13), 0, "CX16 masked");
        assert_eq!(e[0].ecx & (1 << 26), 0, "XSAVE masked");
        assert_eq!(e[0].ebx >> 24, 3);
        assert_eq!((e[0].ebx >> 16) & 0xff, 4);
        assert_eq!(e[1].ebx & (1 << 20), 0, "SMAP masked in subleaf 0");
        assert_ne!(e[2].ebx & (1 << 20), 0, "other subleaves untouched");
    }

    #[test]
    fn templates_parse_strictly() {
        let t = Template::from_json(
            r#"{"cpuid_modifiers":[{"leaf":1,"register":"ecx","clear":8192}]}"#,
        )
        .unwrap();
        assert_eq!(t.cpuid_modifiers[0].clear, 8192);
        for bad in
            [r#"{"cpuid":[]}"#, r#"{"cpuid_modifiers":[{"leaf":1,"register":"esp"}]}"#, "[", ""]
        {
            assert!(Template::from_json(bad).is_err(), "{bad}");
        }
    }
}
