//! The machine a report was measured on: CPU, memory, kernel, what kind of KVM, and the
//! versions of the tools compared.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KvmFlavour {
    /// VT-x/AMD-V on bare metal.
    Hardware,
    /// VT-x/AMD-V offered to this machine, itself a VM.
    Nested,
    /// `kvm_pvm`: pagetable-based KVM that emulates guest kernel code.
    Pvm,
    /// No usable /dev/kvm.
    None,
}

#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cpu_model: String,
    pub cores: usize,
    pub memory_mib: u64,
    pub kernel: String,
    pub kvm: KvmFlavour,
    /// Tool -> its version line (or why it has none).
    pub tools: BTreeMap<String, String>,
}

impl KvmFlavour {
    pub fn detect() -> KvmFlavour {
        if super::runtimes::kvm_unusable().is_some() {
            return KvmFlavour::None;
        }
        if vmm::host::HostKvm::detect() == vmm::host::HostKvm::Pvm {
            return KvmFlavour::Pvm;
        }
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let virtualized = cpuinfo
            .lines()
            .find(|l| l.starts_with("flags"))
            .is_some_and(|l| l.split_whitespace().any(|f| f == "hypervisor"));
        if virtualized { KvmFlavour::Nested } else { KvmFlavour::Hardware }
    }

    pub fn describe(self) -> &'static str {
        match self {
            KvmFlavour::Hardware => "hardware KVM",
            KvmFlavour::Nested => "nested KVM (this machine is a VM with VT-x/AMD-V)",
            KvmFlavour::Pvm => {
                "PVM-like KVM (kvm_pvm: guest kernel code emulated, every VM exit ~30-60 µs)"
            }
            KvmFlavour::None => "no usable KVM",
        }
    }
}

fn first_line(cmd: &str, args: &[&str]) -> String {
    match Command::new(cmd).args(args).stdin(Stdio::null()).output() {
        Ok(out) => {
            let text = [out.stdout, out.stderr].concat();
            let text = String::from_utf8_lossy(&text);
            text.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_owned()
        }
        Err(e) => format!("not available: {e}"),
    }
}

fn meminfo_mib() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024)
}

impl Machine {
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        let mut tools = BTreeMap::new();
        tools.insert("ringfence".into(), env!("CARGO_PKG_VERSION").into());
        for (tool, args) in [
            ("runc", &["--version"][..]),
            ("runsc", &["--version"][..]),
            ("sqlite3", &["--version"][..]),
            ("busybox", &["--help"][..]),
            ("cc", &["--version"][..]),
            ("qemu-system-x86_64", &["--version"][..]),
        ] {
            tools.insert(tool.into(), first_line(tool, args));
        }
        Machine {
            cpu_model,
            cores,
            memory_mib: meminfo_mib(),
            kernel,
            kvm: KvmFlavour::detect(),
            tools,
        }
    }
}
