//! Starting inputs for the fuzz targets (feature `testing`): guest memory laid out as
//! [`crate::testing::fuzz_queue`] expects, holding well-formed requests, so that the fuzzer
//! mutates its way from inputs that reach deep into a device rather than from random bytes
//! (which rarely form a vsock header with the right CIDs).

use crate::testing::{FUZZ_QUEUE_SIZE, fuzz_queue};
use crate::vsock::proto::{
    HOST_CID, OP_CREDIT_REQUEST, OP_CREDIT_UPDATE, OP_REQUEST, OP_RST, OP_RW, OP_SHUTDOWN,
    SHUTDOWN_RCV, SHUTDOWN_SEND, TYPE_STREAM,
};

const DESC_F_NEXT: u16 = 1;
const DESC_F_WRITE: u16 = 2;
/// The guest CID the fuzz target's device has.
pub const GUEST_CID: u64 = 3;
/// The host port the fuzz target listens on.
pub const HOST_PORT: u32 = 1024;

/// Guest memory being laid out.
struct Image(Vec<u8>);

impl Image {
    fn put(&mut self, at: u64, bytes: &[u8]) {
        let at = at as usize;
        if self.0.len() < at + bytes.len() {
            self.0.resize(at + bytes.len(), 0);
        }
        self.0[at..at + bytes.len()].copy_from_slice(bytes);
    }

    fn descriptor(&mut self, queue: u64, index: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let mut d = Vec::with_capacity(16);
        d.extend_from_slice(&addr.to_le_bytes());
        d.extend_from_slice(&len.to_le_bytes());
        d.extend_from_slice(&flags.to_le_bytes());
        d.extend_from_slice(&next.to_le_bytes());
        self.put(fuzz_queue(queue).desc + u64::from(index) * 16, &d);
    }

    /// The avail ring of `queue` offering the chains headed by `heads`.
    fn offer(&mut self, queue: u64, heads: &[u16]) {
        let avail = fuzz_queue(queue).avail;
        self.put(avail + 2, &(heads.len() as u16).to_le_bytes());
        for (i, h) in heads.iter().enumerate() {
            self.put(avail + 4 + 2 * i as u64, &h.to_le_bytes());
        }
    }
}

/// A vsock packet header from the guest's port 5000 to the host's [`HOST_PORT`].
fn vsock_header(op: u16, flags: u32, len: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(44);
    h.extend_from_slice(&GUEST_CID.to_le_bytes());
    h.extend_from_slice(&HOST_CID.to_le_bytes());
    h.extend_from_slice(&5000u32.to_le_bytes());
    h.extend_from_slice(&HOST_PORT.to_le_bytes());
    h.extend_from_slice(&len.to_le_bytes());
    h.extend_from_slice(&TYPE_STREAM.to_le_bytes());
    h.extend_from_slice(&op.to_le_bytes());
    h.extend_from_slice(&flags.to_le_bytes());
    h.extend_from_slice(&65536u32.to_le_bytes()); // buf_alloc
    h.extend_from_slice(&0u32.to_le_bytes()); // fwd_cnt
    h
}

/// Where receive buffers go, and the first of them.
pub const VSOCK_RX_BUFFERS: u64 = 0x8000;
const RX_BUFFER: u32 = 0x1000;

/// A guest with four receive buffers on queue 0 and `packets` (operation, flags, payload)
/// queued on queue 1, each a header descriptor followed by one for its payload.
pub fn vsock(packets: &[(u16, u32, &[u8])]) -> Vec<u8> {
    assert!(packets.len() * 2 <= usize::from(FUZZ_QUEUE_SIZE), "too many packets");
    let mut m = Image(Vec::new());
    for i in 0..4u16 {
        let addr = VSOCK_RX_BUFFERS + u64::from(i) * u64::from(RX_BUFFER);
        m.descriptor(0, i, addr, RX_BUFFER, DESC_F_WRITE, 0);
    }
    m.offer(0, &[0, 1, 2, 3]);
    let mut heads = Vec::new();
    for (k, (op, flags, payload)) in packets.iter().enumerate() {
        let (head, data) = (2 * k as u16, 2 * k as u16 + 1);
        let header_at = 0x4000 + 0x100 * k as u64;
        let data_at = 0x6000 + 0x400 * k as u64;
        m.put(header_at, &vsock_header(*op, *flags, payload.len() as u32));
        let flags = if payload.is_empty() { 0 } else { DESC_F_NEXT };
        m.descriptor(1, head, header_at, 44, flags, data);
        if !payload.is_empty() {
            m.put(data_at, payload);
            m.descriptor(1, data, data_at, payload.len() as u32, 0, 0);
        }
        heads.push(head);
    }
    m.offer(1, &heads);
    m.0
}

/// The vsock target's starting inputs: a connection's whole life and its odd turns.
pub fn vsock_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let both = SHUTDOWN_RCV | SHUTDOWN_SEND;
    vec![
        ("request", vsock(&[(OP_REQUEST, 0, b"")])),
        ("request-write", vsock(&[(OP_REQUEST, 0, b""), (OP_RW, 0, b"hello host")])),
        (
            "credit",
            vsock(&[(OP_REQUEST, 0, b""), (OP_CREDIT_REQUEST, 0, b""), (OP_CREDIT_UPDATE, 0, b"")]),
        ),
        ("shutdown", vsock(&[(OP_REQUEST, 0, b""), (OP_RW, 0, b"bye"), (OP_SHUTDOWN, both, b"")])),
        ("reset", vsock(&[(OP_REQUEST, 0, b""), (OP_RST, 0, b""), (OP_RW, 0, b"late")])),
    ]
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use vm_memory::{Bytes, GuestAddress};

    use super::*;
    use crate::testing::fuzz_device;
    use crate::vsock::proto::OP_RESPONSE;
    use crate::vsock::{Vsock, VsockConfig};

    /// The seeds do what they are for: the device connects to the host and answers.
    #[test]
    fn vsock_seeds_open_a_connection_and_carry_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.sock");
        let listener =
            std::os::unix::net::UnixListener::bind(dir.path().join(format!("v.sock_{HOST_PORT}")))
                .unwrap();
        let mut dev = Vsock::new(&VsockConfig { guest_cid: GUEST_CID, uds_path: path }).unwrap();
        let seeds = vsock_seeds();
        let (_, write) = seeds.iter().find(|(n, _)| *n == "request-write").unwrap();
        let mem = fuzz_device(&mut dev, write);
        let used_idx: u16 = mem.read_obj(GuestAddress(fuzz_queue(0).used + 2)).unwrap();
        assert!(used_idx >= 1, "no packet for the guest");
        let op: u16 = mem.read_obj(GuestAddress(VSOCK_RX_BUFFERS + 30)).unwrap();
        assert_eq!(op, OP_RESPONSE);
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        let mut got = [0u8; 10];
        conn.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello host");
        // Every seed runs cleanly on the same device, as the fuzzer runs them.
        for (_, seed) in &seeds {
            fuzz_device(&mut dev, seed);
        }
    }
}
