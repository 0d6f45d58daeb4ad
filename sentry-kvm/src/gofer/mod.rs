//! The Gofer: a separate process that serves the sandbox's root filesystem to the Sentry over
//! a narrow protocol, so that the Sentry itself never opens host files.
//!
//! The Gofer confines itself to the rootfs (chroot, walks one component at a time with
//! O_NOFOLLOW, rejects `..`, `.` and names with `/`). The Sentry resolves paths, symlinks and
//! `..` itself against its own view, and receives read-only file descriptors for file data.

pub mod client;
pub mod protocol;
pub mod server;
pub mod wire;

pub use client::GoferClient;
