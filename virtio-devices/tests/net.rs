//! virtio-net through real descriptor chains and a real tap device, in a network namespace
//! of the test's own (a thread's namespace: its children and sockets live there too).

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::process::Command;
use std::time::Duration;

use virtio_devices::VirtioDevice;
use virtio_devices::net::{Net, NetConfig};
use virtio_devices::testing::{self, BUFFERS, Driver, VRING_DESC_F_WRITE as W};

const GUEST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const HOST_IP: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
const GUEST_IP: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);

fn ip(args: &str) {
    let st = Command::new("ip").args(args.split_whitespace()).status().unwrap();
    assert!(st.success(), "ip {args}");
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 =
        data.chunks(2).map(|c| u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A virtio-net header, then Ethernet, IPv4 and UDP around `payload`.
fn udp_frame(dst_mac: [u8; 6], payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&GUEST_MAC);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + 8 + payload.len()) as u16;
    let mut iph = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
    iph[2..4].copy_from_slice(&total.to_be_bytes());
    iph.extend_from_slice(&GUEST_IP.octets());
    iph.extend_from_slice(&HOST_IP.octets());
    let c = checksum(&iph);
    iph[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&iph);
    f.extend_from_slice(&7000u16.to_be_bytes());
    f.extend_from_slice(&9000u16.to_be_bytes());
    f.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]); // no UDP checksum (IPv4 allows it)
    f.extend_from_slice(payload);
    f
}

fn wait_readable(fd: i32) -> bool {
    let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut pfd, 1, 2000) == 1 }
}

fn in_own_netns(f: impl FnOnce() + Send + 'static) {
    std::thread::spawn(move || {
        // SAFETY: moves only this thread into a new network namespace.
        assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare(CLONE_NEWNET)");
        f()
    })
    .join()
    .unwrap();
}

#[test]
fn frames_round_trip_through_a_real_tap() {
    in_own_netns(|| {
        let mut dev = Net::new(&NetConfig {
            tap: "rf-tap0".into(),
            mac: Some(GUEST_MAC),
            ..Default::default()
        })
        .unwrap();
        let mut mac = [0u8; 6];
        dev.read_config(0, &mut mac);
        assert_eq!(mac, GUEST_MAC);
        ip("link set rf-tap0 up");
        ip("addr add 10.9.0.1/24 dev rf-tap0");
        ip("neigh add 10.9.0.2 lladdr 02:00:00:00:00:02 dev rf-tap0");
        let link = Command::new("ip").args(["-o", "link", "show", "rf-tap0"]).output().unwrap();
        let link = String::from_utf8_lossy(&link.stdout).into_owned();
        let host_mac: Vec<u8> = link
            .split("link/ether ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap()
            .split(':')
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect();
        let host_mac: [u8; 6] = host_mac.try_into().unwrap();
        let sock = UdpSocket::bind(SocketAddrV4::new(HOST_IP, 9000)).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();

        let mem = testing::memory(16 << 20);
        let mut rx = Driver::new(&mem, 0, 256);
        let mut tx = Driver::new(&mem, 1, 256);
        testing::activate(&mut dev, &mem, &[&rx, &tx]);

        // Guest to host: 300 datagrams, each received by a host socket.
        for i in 0..300u32 {
            let payload = format!("guest datagram {i}");
            let frame = udp_frame(host_mac, payload.as_bytes());
            tx.write(BUFFERS, &frame);
            let head = tx.submit(&[(BUFFERS, frame.len() as u32, 0)]);
            dev.queue_notify(1);
            assert_eq!(tx.used(), vec![(head, 0)]);
            let mut buf = [0u8; 256];
            let (n, from) = sock.recv_from(&mut buf).expect("the host receives the frame");
            assert_eq!(&buf[..n], payload.as_bytes());
            assert_eq!(from, SocketAddrV4::new(GUEST_IP, 7000).into());
        }
        // A transmit chain with a device-writable buffer is refused; the next one goes.
        let head = tx.submit(&[(BUFFERS, 64, W)]);
        dev.queue_notify(1);
        assert_eq!(tx.used(), vec![(head, 0)]);

        // Host to guest: datagrams land in receive buffers (mergeable: 2 KiB each, as many as
        // the largest GSO frame needs, and a few more).
        const RXBUF: u64 = BUFFERS + 0x10_0000;
        let mut where_is = std::collections::HashMap::new();
        for i in 0..40 {
            where_is.insert(rx.submit(&[(RXBUF + i * 0x1000, 2048, W)]), RXBUF + i * 0x1000);
        }
        dev.queue_notify(0);
        let fd = dev.backend_fd().unwrap();
        let mut got = Vec::new();
        for i in 0..40u32 {
            sock.send_to(
                format!("host datagram {i}").as_bytes(),
                SocketAddrV4::new(GUEST_IP, 7000),
            )
            .unwrap();
            while got.len() <= i as usize {
                assert!(wait_readable(fd), "the tap has the frame");
                dev.backend_ready();
                for (head, len) in rx.used() {
                    let addr = where_is[&head];
                    let frame = rx.read(addr, len as usize);
                    // num_buffers is 1; the Ethernet frame follows the 12-byte header. The
                    // kernel also sends its own (IPv6 multicast) frames: skip those.
                    assert_eq!(&frame[10..12], &[1, 0]);
                    if frame[12..18] == GUEST_MAC && frame[24..26] == [0x08, 0x00] {
                        got.push(String::from_utf8_lossy(&frame[12 + 14 + 20 + 8..]).into_owned());
                    }
                    // Give the buffer back.
                    where_is.insert(rx.submit(&[(addr, 2048, W)]), addr);
                    dev.queue_notify(0);
                }
            }
        }
        let want: Vec<String> = (0..40).map(|i| format!("host datagram {i}")).collect();
        assert_eq!(got, want);
        let s = dev.stats();
        assert_eq!((s.tx_frames, s.refused), (300, 1));
        assert!(s.rx_frames >= 40);
    });
}

#[test]
fn a_missing_or_bad_tap_is_a_clear_error() {
    in_own_netns(|| {
        let err = Net::new(&NetConfig { tap: "x".repeat(20), ..Default::default() }).err().unwrap();
        assert!(err.to_string().contains("longer than 15"), "{err}");
    });
}

#[test]
fn over_a_socket_pair_frames_keep_their_boundaries_and_bad_chains_are_refused() {
    use std::os::fd::AsRawFd;
    let (tap, peer) = virtio_devices::net::tap::Tap::socket_pair().unwrap();
    let mut dev = Net::with_tap(tap, &NetConfig::default()).unwrap();
    assert_eq!(dev.features() & (1 << 7), 0, "no guest checksum offload on a socket");
    let mem = testing::memory(16 << 20);
    let mut rx = Driver::new(&mem, 0, 256);
    let mut tx = Driver::new(&mem, 1, 256);
    testing::activate(&mut dev, &mem, &[&rx, &tx]);
    // Guest to peer: a frame split over three buffers arrives as one datagram.
    tx.write(BUFFERS, &[0u8; 12]);
    tx.write(BUFFERS + 0x1000, b"abc");
    tx.write(BUFFERS + 0x2000, b"defg");
    tx.submit(&[(BUFFERS, 12, 0), (BUFFERS + 0x1000, 3, 0), (BUFFERS + 0x2000, 4, 0)]);
    // Refused: shorter than the header; a writable buffer; over the largest frame.
    tx.submit(&[(BUFFERS, 8, 0)]);
    tx.submit(&[(BUFFERS, 12, 0), (BUFFERS + 0x1000, 3, W)]);
    tx.submit(&[(BUFFERS, 12, 0), (BUFFERS + 0x10_0000, 70_000, 0)]);
    dev.queue_notify(1);
    assert_eq!(tx.used().iter().map(|u| u.1).collect::<Vec<_>>(), [0, 0, 0, 0]);
    let mut buf = [0u8; 64];
    // SAFETY: reading into a stack buffer of its length.
    let n = unsafe {
        libc::recv(peer.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT)
    };
    assert_eq!(&buf[12..n as usize], b"abcdefg");
    // SAFETY: as above: nothing more was sent.
    let more = unsafe {
        libc::recv(peer.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT)
    };
    assert_eq!(more, -1);
    assert_eq!(dev.stats().refused, 3);

    // Peer to guest: a readable receive buffer is refused; the frame waits until the chains
    // after it can hold the largest frame (9 KiB without offloads), and then takes only the
    // first of them, saying so in its header.
    let frame = [[0u8; 12].as_slice(), b"hello guest"].concat();
    // SAFETY: sending from a valid buffer.
    unsafe { libc::send(peer.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
    let bad = rx.submit(&[(BUFFERS, 2048, 0)]);
    let good = rx.submit(&[(BUFFERS + 0x1000, 2048, W)]);
    dev.queue_notify(0);
    assert_eq!(rx.used(), vec![(bad, 0)], "one 2 KiB chain cannot hold a 9 KiB frame");
    let more: Vec<u64> = (2..6).map(|i| BUFFERS + i * 0x1000).collect();
    let heads: Vec<u16> = more.iter().map(|&a| rx.submit(&[(a, 2048, W)])).collect();
    dev.queue_notify(0);
    assert_eq!(rx.used(), vec![(good, frame.len() as u32)]);
    assert_eq!(rx.read(BUFFERS + 0x1000 + 10, 2), [1, 0], "num_buffers");
    assert_eq!(rx.read(BUFFERS + 0x1000 + 12, 11), b"hello guest");

    // A 5000-byte frame spans three of the chains left (and one more posted), in order.
    let big: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let frame = [[0u8; 12].as_slice(), &big].concat();
    // SAFETY: sending from a valid buffer.
    unsafe { libc::send(peer.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
    rx.submit(&[(BUFFERS + 0x6000, 2048, W)]);
    dev.queue_notify(0);
    let want = vec![(heads[0], 2048), (heads[1], 2048), (heads[2], frame.len() as u32 - 4096)];
    assert_eq!(rx.used(), want);
    assert_eq!(rx.read(more[0] + 10, 2), [3, 0], "num_buffers");
    let got = [rx.read(more[0], 2048), rx.read(more[1], 2048), rx.read(more[2], 5012 - 4096)];
    assert_eq!(got.concat()[12..], big[..]);
    let s = dev.stats();
    assert_eq!((s.rx_frames, s.refused), (2, 4));

    // The chains the frame did not reach went back: they take the next one.
    let frame = [[0u8; 12].as_slice(), b"next"].concat();
    // SAFETY: sending from a valid buffer.
    unsafe { libc::send(peer.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
    for i in 7..12 {
        rx.submit(&[(BUFFERS + i * 0x1000, 2048, W)]);
    }
    dev.queue_notify(0);
    assert_eq!(rx.used(), vec![(heads[3], frame.len() as u32)]);
}

#[test]
fn without_mergeable_buffers_each_frame_fills_one_chain() {
    use std::os::fd::AsRawFd;
    let (tap, peer) = virtio_devices::net::tap::Tap::socket_pair().unwrap();
    let mut dev = Net::with_tap(tap, &NetConfig::default()).unwrap();
    let mem = testing::memory(16 << 20);
    let mut rx = Driver::new(&mem, 0, 256);
    let tx = Driver::new(&mem, 1, 256);
    const MRG_RXBUF: u64 = 1 << 15;
    assert_ne!(dev.features() & MRG_RXBUF, 0);
    dev.ack_features(dev.features() & !MRG_RXBUF);
    let irq = std::sync::Arc::new(testing::Irq::default());
    dev.activate(mem.clone(), vec![rx.config(), tx.config()], irq).unwrap();
    let frame = [[0u8; 12].as_slice(), b"hello guest"].concat();
    // SAFETY: sending from a valid buffer.
    unsafe { libc::send(peer.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
    let bad = rx.submit(&[(BUFFERS, 2048, 0)]);
    let good = rx.submit(&[(BUFFERS + 0x1000, 2048, W)]);
    dev.queue_notify(0);
    assert_eq!(rx.used(), vec![(bad, 0), (good, frame.len() as u32)]);
    assert_eq!(rx.read(BUFFERS + 0x1000 + 10, 2), [1, 0], "num_buffers");
    assert_eq!(rx.read(BUFFERS + 0x1000 + 12, 11), b"hello guest");
}
