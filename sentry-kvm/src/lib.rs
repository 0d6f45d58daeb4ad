//! The Sentry: a user-space implementation of the Linux x86-64 system call ABI for applications
//! running at CPL3 in a KVM guest, with files served by a separate Gofer process.
//!
//! The leaves ([`abi`], [`creds`], [`sync`], [`waiter`], [`random`], [`mm`]) know nothing of
//! the rest. The [`vfs`] (paths, open files, filesystems, advisory file locks) sees the task it
//! works for only through [`vfs::context::Context`], which the [`kernel`]'s tasks implement; the
//! kernel's own files (pipes, sockets, /proc) sit on the vfs.

pub mod abi;
pub mod control;
pub mod creds;
pub mod gofer;
pub mod kernel;
pub mod loader;
pub mod mm;
pub mod platform;
pub mod random;
pub mod sandbox;
pub mod seccomp;
pub mod sync;
pub mod syscalls;
pub mod vfs;
pub mod waiter;
