//! The Sentry: a user-space implementation of the Linux x86-64 system call ABI for applications
//! running at CPL3 in a KVM guest.

pub mod mm;
pub mod platform;
