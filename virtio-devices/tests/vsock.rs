//! virtio-vsock through real descriptor chains, with the test playing the guest's driver and
//! real Unix sockets on the host side.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use virtio_devices::VirtioDevice;
use virtio_devices::testing::{self, BUFFERS, Driver, VRING_DESC_F_WRITE as W};
use virtio_devices::vsock::proto::*;
use virtio_devices::vsock::{Vsock, VsockConfig};

const CID: u64 = 3;
const HDR: usize = 44;
const RX_SLOTS: u64 = 32;
const SLOT: u64 = 0x1_1000;
const TX_HDR: u64 = BUFFERS + 0x80_0000;
const TX_DATA: u64 = TX_HDR + 0x1000;
const GUEST_BUF: u32 = 256 * 1024;

#[derive(Debug, Clone)]
struct Pkt {
    src_port: u32,
    dst_port: u32,
    op: u16,
    flags: u32,
    buf_alloc: u32,
    fwd_cnt: u32,
    data: Vec<u8>,
}

struct Guest<'m> {
    rx: Driver<'m>,
    tx: Driver<'m>,
    ev: Driver<'m>,
    dev: Vsock,
    slots: HashMap<u16, u64>,
}

fn header(src_port: u32, dst_port: u32, op: u16, flags: u32, len: u32, fwd_cnt: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(HDR);
    h.extend_from_slice(&CID.to_le_bytes());
    h.extend_from_slice(&HOST_CID.to_le_bytes());
    h.extend_from_slice(&src_port.to_le_bytes());
    h.extend_from_slice(&dst_port.to_le_bytes());
    h.extend_from_slice(&len.to_le_bytes());
    h.extend_from_slice(&TYPE_STREAM.to_le_bytes());
    h.extend_from_slice(&op.to_le_bytes());
    h.extend_from_slice(&flags.to_le_bytes());
    h.extend_from_slice(&GUEST_BUF.to_le_bytes());
    h.extend_from_slice(&fwd_cnt.to_le_bytes());
    h
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

impl<'m> Guest<'m> {
    fn new(mem: &'m virtio_devices::GuestMem, path: &std::path::Path) -> Guest<'m> {
        let rx = Driver::new(mem, 0, 256);
        let tx = Driver::new(mem, 1, 256);
        let ev = Driver::new(mem, 2, 64);
        let mut dev = Vsock::new(&VsockConfig { guest_cid: CID, uds_path: path.into() }).unwrap();
        testing::activate(&mut dev, mem, &[&rx, &tx, &ev]);
        let mut g = Guest { rx, tx, ev, dev, slots: HashMap::new() };
        for i in 0..RX_SLOTS {
            g.post(BUFFERS + i * SLOT);
        }
        g.dev.queue_notify(0);
        g
    }

    fn post(&mut self, at: u64) {
        let head = self.rx.submit(&[(at, HDR as u32, W), (at + 0x1000, MAX_PAYLOAD, W)]);
        self.slots.insert(head, at);
    }

    fn send_raw(&mut self, hdr: &[u8], data: &[u8]) {
        self.tx.write(TX_HDR, hdr);
        if data.is_empty() {
            self.tx.submit(&[(TX_HDR, hdr.len() as u32, 0)]);
        } else {
            self.tx.write(TX_DATA, data);
            self.tx.submit(&[(TX_HDR, hdr.len() as u32, 0), (TX_DATA, data.len() as u32, 0)]);
        }
        self.dev.queue_notify(1);
        assert_eq!(self.tx.used().len(), 1, "the device takes every transmit chain");
    }

    fn send(&mut self, src: u32, dst: u32, op: u16, flags: u32, data: &[u8], fwd_cnt: u32) {
        self.send_raw(&header(src, dst, op, flags, data.len() as u32, fwd_cnt), data);
    }

    /// Waits up to `ms` for the host side, then collects what the device sent.
    fn pump(&mut self, ms: i32) -> Vec<Pkt> {
        let mut pfd =
            libc::pollfd { fd: self.dev.backend_fd().unwrap(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, ms) } == 1 {
            self.dev.backend_ready();
        }
        let mut out = Vec::new();
        for (head, len) in self.rx.used() {
            let Some(at) = self.slots.remove(&head) else {
                panic!(
                    "head {head} len {len} not posted; posted {:?}",
                    self.slots.keys().collect::<Vec<_>>()
                )
            };
            let h = self.rx.read(at, HDR);
            let n = u32_at(&h, 24) as usize;
            assert_eq!(len as usize, HDR + n);
            assert_eq!(u64::from_le_bytes(h[0..8].try_into().unwrap()), HOST_CID);
            assert_eq!(u64::from_le_bytes(h[8..16].try_into().unwrap()), CID);
            out.push(Pkt {
                src_port: u32_at(&h, 16),
                dst_port: u32_at(&h, 20),
                op: u16::from_le_bytes([h[30], h[31]]),
                flags: u32_at(&h, 32),
                buf_alloc: u32_at(&h, 36),
                fwd_cnt: u32_at(&h, 40),
                data: self.rx.read(at + 0x1000, n),
            });
            self.post(at);
        }
        if !out.is_empty() {
            self.dev.queue_notify(0);
        }
        out
    }
}

fn pattern(seed: u64, offset: u64) -> u8 {
    ((offset * seed) % 251) as u8
}

#[test]
fn a_64_mib_stream_flows_both_ways_under_flow_control() {
    const TOTAL: u64 = 64 << 20;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.sock");
    let mem = testing::memory(64 << 20);
    let mut g = Guest::new(&mem, &path);

    let host = {
        let path = path.clone();
        std::thread::spawn(move || {
            let mut s = UnixStream::connect(&path).unwrap();
            s.write_all(b"CONNECT 1234\n").unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            assert!(line.starts_with("OK ") && line.ends_with('\n'), "{line:?}");
            let writer = std::thread::spawn(move || {
                let mut buf = vec![0u8; 1 << 20];
                for chunk in 0..TOTAL / buf.len() as u64 {
                    for (i, b) in buf.iter_mut().enumerate() {
                        *b = pattern(31, chunk * (1 << 20) + i as u64);
                    }
                    s.write_all(&buf).unwrap();
                }
                s.shutdown(std::net::Shutdown::Write).unwrap();
            });
            let mut got = 0u64;
            let mut buf = vec![0u8; 1 << 16];
            while got < TOTAL {
                let n = r.read(&mut buf).unwrap();
                assert!(n > 0, "the guest's stream ended early at {got}");
                for (i, b) in buf[..n].iter().enumerate() {
                    assert_eq!(*b, pattern(17, got + i as u64), "host byte {}", got + i as u64);
                }
                got += n as u64;
            }
            writer.join().unwrap();
            line
        })
    };

    // The guest: accept, then send and receive 64 MiB, respecting the device's credit and
    // giving it credit back as it consumes.
    let start = Instant::now();
    let (mut local, mut received, mut sent) = (0u32, 0u64, 0u64);
    let (mut peer_alloc, mut peer_fwd, mut fwd_sent) = (0u32, 0u32, 0u32);
    let mut shutdown = false;
    while !(received == TOTAL && sent == TOTAL && shutdown) {
        assert!(start.elapsed() < Duration::from_secs(120), "stalled: got {received}, sent {sent}");
        for p in g.pump(5) {
            match p.op {
                OP_REQUEST => {
                    assert_eq!(p.dst_port, 1234);
                    local = p.src_port;
                    g.send(1234, local, OP_RESPONSE, 0, &[], 0);
                }
                OP_RW => {
                    for (i, b) in p.data.iter().enumerate() {
                        assert_eq!(*b, pattern(31, received + i as u64), "guest byte");
                    }
                    received += p.data.len() as u64;
                }
                OP_CREDIT_UPDATE => {}
                OP_SHUTDOWN => {
                    assert_eq!(received, TOTAL, "shutdown after all the data");
                    assert_eq!(p.flags, SHUTDOWN_RCV | SHUTDOWN_SEND);
                    shutdown = true;
                }
                other => panic!("unexpected op {other}"),
            }
            if p.op != OP_REQUEST {
                assert!(p.buf_alloc >= MAX_PAYLOAD);
                peer_alloc = p.buf_alloc;
                peer_fwd = p.fwd_cnt;
            }
        }
        if local == 0 {
            continue;
        }
        // Give credit back in steps, as a driver does.
        if received as u32 - fwd_sent >= 64 * 1024 {
            fwd_sent = received as u32;
            g.send(1234, local, OP_CREDIT_UPDATE, 0, &[], fwd_sent);
        }
        loop {
            let credit = peer_alloc.saturating_sub((sent as u32).wrapping_sub(peer_fwd));
            let n = (TOTAL - sent).min(u64::from(credit)).min(u64::from(MAX_PAYLOAD));
            if n == 0 {
                break;
            }
            let data: Vec<u8> = (0..n).map(|i| pattern(17, sent + i)).collect();
            g.send(1234, local, OP_RW, 0, &data, received as u32);
            sent += n;
        }
    }
    let line = host.join().unwrap();
    assert_eq!(line, format!("OK {local}\n"));
    g.send(1234, local, OP_RST, 0, &[], 0);
    assert_eq!(g.dev.connection_count(), 0);
    eprintln!("vsock: 64 MiB each way in {:?}", start.elapsed());
}

#[test]
fn many_guest_connections_echo_then_close_and_bad_packets_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.sock");
    let listener = UnixListener::bind(format!("{}_5000", path.display())).unwrap();
    let server = std::thread::spawn(move || {
        let mut handlers = Vec::new();
        for _ in 0..17 {
            let (s, _) = listener.accept().unwrap();
            handlers.push(std::thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                if line.starts_with("flood") {
                    // Read nothing more: the guest must not overrun its credit.
                    std::thread::sleep(Duration::from_secs(3));
                    return;
                }
                (&s).write_all(format!("pong {line}").as_bytes()).unwrap();
                let mut rest = Vec::new();
                r.read_to_end(&mut rest).unwrap();
                assert!(rest.is_empty());
            }));
        }
        for h in handlers {
            h.join().unwrap();
        }
    });
    let mem = testing::memory(64 << 20);
    let mut g = Guest::new(&mem, &path);
    const N: u32 = 16;
    for i in 0..N {
        g.send(1000 + i, 5000, OP_REQUEST, 0, &[], 0);
    }
    // Nobody listens on 6000: refused.
    g.send(2000, 6000, OP_REQUEST, 0, &[], 0);
    let mut responses = 0;
    let mut refused = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    while responses < N || !refused {
        assert!(Instant::now() < deadline);
        for p in g.pump(10) {
            match (p.op, p.src_port) {
                (OP_RESPONSE, 5000) => responses += 1,
                (OP_RST, 6000) => refused = true,
                other => panic!("{other:?}"),
            }
        }
    }
    for i in 0..N {
        g.send(1000 + i, 5000, OP_RW, 0, format!("ping {i}\n").as_bytes(), 0);
    }
    let mut pongs = HashMap::new();
    while pongs.len() < N as usize {
        assert!(Instant::now() < deadline, "{pongs:?}");
        for p in g.pump(10) {
            assert_eq!(p.op, OP_RW);
            pongs.insert(p.dst_port, String::from_utf8(p.data).unwrap());
        }
    }
    for i in 0..N {
        assert_eq!(pongs[&(1000 + i)], format!("pong ping {i}\n"));
    }
    // Closing from the guest: SHUTDOWN both ways, the device answers RST.
    for i in 0..N {
        g.send(1000 + i, 5000, OP_SHUTDOWN, SHUTDOWN_RCV | SHUTDOWN_SEND, &[], 0);
    }
    let mut rsts = 0;
    while rsts < N {
        assert!(Instant::now() < deadline);
        rsts += g.pump(10).iter().filter(|p| p.op == OP_RST).count() as u32;
    }
    assert_eq!(g.dev.connection_count(), 0);

    // Bad packets: a short header, a packet from another CID, data on no connection, a
    // datagram type. The device keeps serving.
    g.send_raw(&[0u8; 10], &[]);
    let mut foreign = header(1, 5000, OP_REQUEST, 0, 0, 0);
    foreign[0] = 9;
    g.send_raw(&foreign, &[]);
    g.send(3000, 5000, OP_RW, 0, b"nobody", 0);
    let mut dgram = header(3001, 5000, OP_REQUEST, 0, 0, 0);
    dgram[28] = 3;
    g.send_raw(&dgram, &[]);
    let got = g.pump(10);
    let rst_to: Vec<u32> = got.iter().filter(|p| p.op == OP_RST).map(|p| p.dst_port).collect();
    assert_eq!(rst_to, [3000, 3001], "{got:?}");
    assert_eq!(g.dev.stats().refused_chains, 2);

    // A guest that ignores its credit is cut off.
    g.send(4000, 5000, OP_REQUEST, 0, &[], 0);
    while !g.pump(10).iter().any(|p| p.op == OP_RESPONSE) {
        assert!(Instant::now() < deadline);
    }
    g.send(4000, 5000, OP_RW, 0, b"flood\n", 0);
    let block = vec![7u8; MAX_PAYLOAD as usize];
    let mut reset = false;
    for _ in 0..64 {
        g.send(4000, 5000, OP_RW, 0, &block, 0);
        if g.pump(0).iter().any(|p| p.op == OP_RST && p.dst_port == 4000) {
            reset = true;
            break;
        }
    }
    assert!(reset, "4 MiB past a 256 KiB credit is refused");
    server.join().unwrap();
}

#[test]
fn credit_returned_with_a_data_packet_resumes_the_flow() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.sock");
    let listener = UnixListener::bind(format!("{}_7000", path.display())).unwrap();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let host = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        // More than the guest's whole buffer; read nothing until the guest has it all (a
        // reading host would wake the device by itself).
        s.write_all(&vec![5u8; 3 * GUEST_BUF as usize / 2]).unwrap();
        done_rx.recv().unwrap();
        let mut got = [0u8; 2];
        s.read_exact(&mut got).unwrap();
        got
    });
    let mem = testing::memory(64 << 20);
    let mut g = Guest::new(&mem, &path);
    g.send(1000, 7000, OP_REQUEST, 0, &[], 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut received = 0usize;
    // Take data without giving credit back: it stops at the guest's buffer size.
    while received < GUEST_BUF as usize {
        assert!(Instant::now() < deadline, "got {received}");
        received +=
            g.pump(10).iter().filter(|p| p.op == OP_RW).map(|p| p.data.len()).sum::<usize>();
    }
    assert_eq!(received, GUEST_BUF as usize);
    assert!(g.pump(50).iter().all(|p| p.op != OP_RW), "no data past the credit");
    // The credit comes back in a data packet (not a CREDIT_UPDATE): the rest follows.
    g.send(1000, 7000, OP_RW, 0, b"ok", received as u32);
    while received < 3 * GUEST_BUF as usize / 2 {
        assert!(Instant::now() < deadline, "stalled at {received}");
        received +=
            g.pump(10).iter().filter(|p| p.op == OP_RW).map(|p| p.data.len()).sum::<usize>();
    }
    done_tx.send(()).unwrap();
    assert_eq!(&host.join().unwrap(), b"ok");
}

#[test]
fn after_a_restore_host_connections_wait_until_the_guest_has_handled_the_reset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.sock");
    let mem = testing::memory(64 << 20);
    let mut g = Guest::new(&mem, &path);
    let event = BUFFERS + RX_SLOTS * SLOT;
    g.ev.submit(&[(event, 8, W)]);
    g.dev.restored();
    assert_eq!(g.ev.used().len(), 1);
    assert_eq!(u32_at(&g.ev.read(event, 4), 0), 0, "VIRTIO_VSOCK_EVENT_TRANSPORT_RESET");

    let mut host = UnixStream::connect(&path).unwrap();
    host.write_all(b"CONNECT 5000\n").unwrap();
    let early = g.pump(200);
    assert!(early.is_empty(), "before the guest handled the reset: {early:?}");
    // The driver refills the event queue and kicks it once it has dropped its connections.
    g.ev.submit(&[(event, 8, W)]);
    g.dev.queue_notify(2);
    let mut got = g.pump(0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.is_empty() && Instant::now() < deadline {
        got = g.pump(10);
    }
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0].op, got[0].dst_port), (OP_REQUEST, 5000));
}
