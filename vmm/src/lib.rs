//! The microVMM: a KVM virtual machine with guest memory, vCPU threads, legacy devices and an
//! event loop, on the rust-vmm crates.
//!
//! - [`resources`]: everything a machine is made of before it starts, filled alike by the
//!   command line, `--config-file` and the API, and turned into a [`vm::VmConfig`].
//! - [`api`]: the Firecracker-compatible API (HTTP over a Unix socket).
//! - [`attach`]: drives and entropy from the API turned into virtio devices.
//! - [`layout`]: the guest-physical memory map.
//! - [`memory`]: guest memory, registered with KVM.
//! - [`bus`]: port and MMIO buses, and the [`bus::BusDevice`] trait devices implement.
//! - [`devices`]: legacy devices (16550 serial, i8042 with a keyboard).
//! - [`loader`]: ELF (with PVH) and bzImage kernels; [`tiny`]: tiny guest images.
//! - [`linux_boot`]: zero page, e820, command line, initrd; [`mptable`]: the MP table;
//!   [`acpi`]: ACPI tables (CPUs, IOAPIC, virtio-mmio devices);
//!   [`cpuid`]: per-vCPU CPUID and JSON CPU templates; [`host`]: what this host's KVM needs.
//! - [`cpu`]: vCPU registers (64-bit and PVH entry) and the run loop that dispatches exits.
//! - [`virtio_mmio`]: the virtio-mmio transport for devices of the `virtio-devices` crate.
//! - [`control`]: acting on a running machine (pause and resume through [`pause`], keys);
//!   [`kick`]: the signal that brings a vCPU thread out of the guest.
//! - [`seccomp`]: per-thread seccomp filters (vCPU, VMM, API threads).
//! - [`jail`]: `--jail`: namespaces, a minimal root, an unprivileged user; [`jail_cgroup`]:
//!   its cgroup limits.
//! - [`metrics`]: counters written as JSON lines; [`logger`]: where the log goes (PUT /logger).
//! - [`exit`]: why a machine ends ([`exit::ExitReason`]) and the signal that ends it.
//! - [`snapshot`]: snapshots of a paused machine, and machines restored from them.
//! - [`vm`]: a whole machine: build, run until it ends, and say why it ended.

pub mod acpi;
pub mod api;
pub mod attach;
pub mod bus;
pub mod control;
pub mod cpu;
pub mod cpuid;
pub mod devices;
pub mod emulation;
pub mod exit;
pub mod host;
pub mod jail;
pub mod jail_cgroup;
pub mod kick;
pub mod layout;
pub mod linux_boot;
pub mod loader;
pub mod logger;
pub mod memory;
pub mod metrics;
pub mod mptable;
pub mod pause;
pub mod resources;
pub mod seccomp;
pub mod snapshot;
pub mod terminal;
pub mod tiny;
pub mod virtio_mmio;
pub mod vm;

/// Errors building or running a machine.
#[derive(Debug, thiserror::Error)]
pub enum VmmError {
    #[error("KVM: {0}")]
    Kvm(#[from] kvm_ioctls::Error),
    #[error("guest memory: {0}")]
    Memory(String),
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
