//! What kind of KVM this host has. On a nested, pagetable-based KVM (`kvm_pvm`, found in cloud
//! VMs without VT-x or AMD-V) guest CPL0 code is instruction-emulated, and the emulator lacks
//! some instructions that Linux uses: a Linux guest boots there only with a few CPUID features
//! masked and a few turned off on its command line (docs/kvm-host-notes.md). Elsewhere nothing
//! changes.

use std::path::Path;

use crate::cpuid::Template;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKvm {
    /// VT-x or AMD-V (nested or not): guests run as they are.
    Hardware,
    /// `kvm_pvm`: guest kernel code is emulated.
    Pvm,
}

/// Kernel command-line words a Linux guest needs on [`HostKvm::Pvm`]: XSAVE, SMAP
/// (`clac`/`stac`) and POPCNT are instructions its emulator cannot run, and the CPUID masks
/// for them are not all honoured.
const PVM_CMDLINE: [&str; 2] = ["noxsave", "clearcpuid=308,151"];

impl HostKvm {
    /// Looks at the modules of the kernel this runs on.
    pub fn detect() -> HostKvm {
        Self::from_sysfs(Path::new("/sys/module"))
    }

    fn from_sysfs(modules: &Path) -> HostKvm {
        if modules.join("kvm_pvm").exists() { HostKvm::Pvm } else { HostKvm::Hardware }
    }

    /// The CPU template guests need here when none was given.
    pub fn template(self) -> Option<Template> {
        match self {
            HostKvm::Hardware => None,
            HostKvm::Pvm => Some(Template::nested_host()),
        }
    }

    /// `cmdline` with what a Linux guest needs here added (words already there are kept).
    pub fn adapt_cmdline(self, cmdline: &str) -> String {
        let words: &[&str] = match self {
            HostKvm::Hardware => &[],
            HostKvm::Pvm => &PVM_CMDLINE,
        };
        let mut out = cmdline.to_owned();
        for w in words {
            let key = w.split('=').next().unwrap_or(w);
            let present =
                cmdline.split_whitespace().any(|have| have.split('=').next() == Some(key));
            if !present {
                out.push(' ');
                out.push_str(w);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pvm_is_told_by_its_module() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("kvm")).unwrap();
        assert_eq!(HostKvm::from_sysfs(dir.path()), HostKvm::Hardware);
        std::fs::create_dir(dir.path().join("kvm_pvm")).unwrap();
        assert_eq!(HostKvm::from_sysfs(dir.path()), HostKvm::Pvm);
    }

    #[test]
    fn the_command_line_gains_only_what_it_lacks() {
        let c = "console=ttyS0 reboot=k";
        assert_eq!(HostKvm::Hardware.adapt_cmdline(c), c);
        assert_eq!(
            HostKvm::Pvm.adapt_cmdline(c),
            "console=ttyS0 reboot=k noxsave clearcpuid=308,151"
        );
        // The user's own choice of a word stays.
        assert_eq!(HostKvm::Pvm.adapt_cmdline("noxsave clearcpuid=308"), "noxsave clearcpuid=308");
        assert!(HostKvm::Pvm.template().is_some() && HostKvm::Hardware.template().is_none());
    }
}
