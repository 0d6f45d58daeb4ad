//! The `microvm` handler's parts: a Linux guest per pod sandbox, run by `ringfence-vmm`, its
//! containers made and run by the guest agent over vsock.
//!
//! - [`guest`]: one VMM process and its agent: start, boot watch, shutdown, console.

pub mod guest;
