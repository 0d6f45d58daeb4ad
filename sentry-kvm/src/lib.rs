//! The Sentry: a user-space implementation of the Linux x86-64 system call ABI for applications
//! running at CPL3 in a KVM guest, with files served by a separate Gofer process.

pub mod abi;
pub mod control;
pub mod gofer;
pub mod kernel;
pub mod loader;
pub mod mm;
pub mod platform;
pub mod sandbox;
pub mod seccomp;
pub mod syscalls;
pub mod vfs;
