//! The Linux x86-64 ABI as applications see it: numbers, flags and structure layouts.

pub mod errno;
pub mod signal;
pub mod stat;
pub mod termios;

pub use errno::Errno;
