//! The virtio-vsock wire protocol (virtio 1.x, 5.10): addresses, operations and flags.

/// The host's CID.
pub const HOST_CID: u64 = 2;
pub const TYPE_STREAM: u16 = 1;

pub const OP_REQUEST: u16 = 1;
pub const OP_RESPONSE: u16 = 2;
pub const OP_RST: u16 = 3;
pub const OP_SHUTDOWN: u16 = 4;
pub const OP_RW: u16 = 5;
pub const OP_CREDIT_UPDATE: u16 = 6;
pub const OP_CREDIT_REQUEST: u16 = 7;

/// SHUTDOWN flags: the sender will receive / send no more.
pub const SHUTDOWN_RCV: u32 = 1;
pub const SHUTDOWN_SEND: u32 = 2;

/// What each connection may have buffered towards the host (its `buf_alloc`).
pub const CONN_BUF: u32 = 256 * 1024;
/// The largest payload of one packet, either way.
pub const MAX_PAYLOAD: u32 = 64 * 1024;

/// A connection, named from the host's side: (host port, guest port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub local: u32,
    pub peer: u32,
}

/// A packet without payload the device owes the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Control {
    pub key: Key,
    pub op: u16,
    pub flags: u32,
}
