//! The KVM platform: a VM per sandbox, application code at CPL3, every event an exit.

pub mod layout;
pub mod machine;
pub mod selftest;
pub mod trampoline;
pub mod tsc;
pub mod vcpu;

pub use machine::Machine;
pub use vcpu::{Kicker, Vcpu};
