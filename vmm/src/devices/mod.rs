//! Legacy devices on the port bus.

pub mod i8042;
pub mod serial;
pub mod serial_input;
