//! `ringfence bench virtio`: the virtio devices on their own, driven through virtio-queue's mock
//! driver in real guest memory (no VM): virtio-blk requests/s and GiB/s on a file, virtio-net
//! frames/s over a socket pair, and what one rate-limiter decision costs. Each I/O row is set
//! against its peer: the same system calls made directly, without the device, in the same run.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use anyhow::Context;
use virtio_bindings::bindings::virtio_blk::{
    VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT,
};
use virtio_devices::VirtioDevice;
use virtio_devices::block::{Block, BlockConfig};
use virtio_devices::net::tap::Tap;
use virtio_devices::net::{Net, NetConfig};
use virtio_devices::rate_limiter::{BucketConfig, RateLimiter, RateLimiterConfig};
use virtio_devices::testing::{self, BUFFERS, Driver, VRING_DESC_F_WRITE as W};

pub struct Row {
    pub name: String,
    /// Requests (or frames, or decisions) per second.
    pub per_s: f64,
    pub bytes: u64,
    /// The same work without the device, per second.
    pub peer: Option<f64>,
}

/// Requests in flight per batch (three descriptors each in a 256-entry queue).
const BATCH: u64 = 64;
const DISK: u64 = 256 << 20;

fn until(seconds: f64, mut f: impl FnMut() -> u64) -> f64 {
    let start = Instant::now();
    let mut done = 0;
    while start.elapsed().as_secs_f64() < seconds {
        done += f();
    }
    done as f64 / start.elapsed().as_secs_f64()
}

fn blk_rows(seconds: f64) -> anyhow::Result<Vec<Row>> {
    let disk = tempfile::NamedTempFile::new_in(std::env::temp_dir())?;
    disk.as_file().set_len(DISK)?;
    // Touch every page so reads come from the page cache, not holes.
    let chunk = vec![1u8; 1 << 20];
    for off in (0..DISK).step_by(chunk.len()) {
        disk.as_file().write_all_at(&chunk, off)?;
    }
    let mem = testing::memory(64 << 20);
    let mut rows = Vec::new();
    for (name, ty, size) in [
        ("blk GET_ID (no I/O)", VIRTIO_BLK_T_GET_ID, 20u32),
        ("blk read 4 KiB", VIRTIO_BLK_T_IN, 4096),
        ("blk read 64 KiB", VIRTIO_BLK_T_IN, 65536),
        ("blk write 4 KiB", VIRTIO_BLK_T_OUT, 4096),
        ("blk write 64 KiB", VIRTIO_BLK_T_OUT, 65536),
    ] {
        let mut dev = Block::new(&BlockConfig { path: disk.path().into(), ..Default::default() })?;
        let mut d = Driver::new(&mem, 0, 256);
        testing::activate(&mut dev, &mem, &[&d]);
        let slot = |i: u64| BUFFERS + i * 0x1_1000;
        let flags = if ty == VIRTIO_BLK_T_OUT { 0 } else { W };
        let mut sector = 0u64;
        let per_s = until(seconds, || {
            for i in 0..BATCH {
                let mut h = [0u8; 16];
                h[0..4].copy_from_slice(&ty.to_le_bytes());
                h[8..16].copy_from_slice(&sector.to_le_bytes());
                sector = (sector + u64::from(size) / 512) % (DISK / 512 - 128);
                d.write(slot(i), &h);
                d.submit(&[
                    (slot(i), 16, 0),
                    (slot(i) + 0x1000, size, flags),
                    (slot(i) + 0x10, 1, W),
                ]);
            }
            dev.queue_notify(0);
            d.used().len() as u64
        });
        // The peer: the same positional reads or writes into a host buffer.
        let peer = (ty != VIRTIO_BLK_T_GET_ID).then(|| {
            let mut buf = vec![0u8; size as usize];
            let mut off = 0u64;
            until(seconds, || {
                for _ in 0..BATCH {
                    let r = if ty == VIRTIO_BLK_T_IN {
                        disk.as_file().read_exact_at(&mut buf, off)
                    } else {
                        disk.as_file().write_all_at(&buf, off)
                    };
                    if r.is_err() {
                        return 0;
                    }
                    off = (off + u64::from(size)) % (DISK - (64 << 10));
                }
                BATCH
            })
        });
        let bytes = if ty == VIRTIO_BLK_T_GET_ID { 0 } else { u64::from(size) };
        rows.push(Row { name: name.into(), per_s, bytes, peer });
    }
    Ok(rows)
}

fn drain(
    peer: OwnedFd,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            // SAFETY: reading into a stack buffer of its length.
            let n = unsafe { libc::recv(peer.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n <= 0 {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    })
}

fn feed(
    peer: OwnedFd,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let frame = [0u8; 1514];
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            // SAFETY: sending from a valid buffer.
            let n = unsafe {
                libc::send(peer.as_raw_fd(), frame.as_ptr().cast(), frame.len(), libc::MSG_DONTWAIT)
            };
            if n < 0 {
                std::thread::sleep(Duration::from_micros(20));
            }
        }
    })
}

fn net_rows(seconds: f64) -> anyhow::Result<Vec<Row>> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    const FRAME: u32 = 1514;
    let mem = testing::memory(16 << 20);
    let mut rows = Vec::new();

    // Transmit: the guest queues frames, the device writes them out, a thread drains them.
    let (tap, peer) = Tap::socket_pair()?;
    let mut dev = Net::with_tap(tap, &NetConfig::default())?;
    let (rx, mut tx) = (Driver::new(&mem, 0, 256), Driver::new(&mem, 1, 256));
    testing::activate(&mut dev, &mem, &[&rx, &tx]);
    let stop = Arc::new(AtomicBool::new(false));
    let drainer = drain(peer, stop.clone());
    let tx_per_s = until(seconds, || {
        for i in 0..128 {
            tx.submit(&[(BUFFERS + i * 0x1000, FRAME, 0)]);
        }
        dev.queue_notify(1);
        tx.used().len() as u64
    });
    let sent = dev.stats().tx_frames;
    stop.store(true, Ordering::Relaxed);
    let _ = drainer.join();
    // The peer: the same frames sent straight into a socket pair.
    let (a, b) = Tap::socket_pair()?;
    let stop = Arc::new(AtomicBool::new(false));
    let drainer = drain(b, stop.clone());
    let frame = vec![0u8; FRAME as usize];
    let iov = libc::iovec { iov_base: frame.as_ptr() as *mut _, iov_len: frame.len() };
    let peer_tx = until(seconds, || {
        (0..128).filter(|_| a.write_frame(std::slice::from_ref(&iov)).is_ok()).count() as u64
    });
    stop.store(true, Ordering::Relaxed);
    let _ = drainer.join();
    let dropped = dev.stats().tx_dropped;
    rows.push(Row {
        name: format!("net transmit 1514 B ({sent} sent, {dropped} dropped)"),
        per_s: tx_per_s * (sent as f64 / (sent + dropped).max(1) as f64),
        bytes: u64::from(FRAME),
        peer: Some(peer_tx),
    });

    // Receive: a thread keeps the socket full, the device fills the guest's buffers.
    let (tap, peer) = Tap::socket_pair()?;
    let mut dev = Net::with_tap(tap, &NetConfig::default())?;
    let (mut rx2, tx2) = (Driver::new(&mem, 0, 256), Driver::new(&mem, 1, 256));
    testing::activate(&mut dev, &mem, &[&rx2, &tx2]);
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = feed(peer, stop.clone());
    // Keep 128 buffers posted: each round hands back what was filled.
    for i in 0..128 {
        rx2.submit(&[(BUFFERS + i * 0x1000, 2048, W)]);
    }
    let mut k = 0u64;
    let rx_per_s = until(seconds, || {
        dev.process_rx();
        let used = rx2.used();
        for _ in &used {
            rx2.submit(&[(BUFFERS + (k % 128) * 0x1000, 2048, W)]);
            k += 1;
        }
        used.len() as u64
    });
    stop.store(true, Ordering::Relaxed);
    let _ = feeder.join();
    let (a, b) = Tap::socket_pair()?;
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = feed(b, stop.clone());
    let mut buf = vec![0u8; 2048];
    let iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    let peer_rx = until(seconds, || {
        (0..128).filter(|_| matches!(a.read_frame(std::slice::from_ref(&iov)), Ok(Some(_)))).count()
            as u64
    });
    stop.store(true, Ordering::Relaxed);
    let _ = feeder.join();
    rows.push(Row {
        name: "net receive 1514 B".into(),
        per_s: rx_per_s,
        bytes: u64::from(FRAME),
        peer: Some(peer_rx),
    });
    drop(rx);
    Ok(rows)
}

fn limiter_rows() -> anyhow::Result<Vec<Row>> {
    // Buckets so large that every decision says yes: the cost of deciding, not of waiting.
    let big = BucketConfig { size: u64::MAX / 4, one_time_burst: 0, refill_time: 1000 };
    let cfg = RateLimiterConfig { bandwidth: Some(big), ops: Some(big) };
    let mut limiter = RateLimiter::new(&cfg).context("rate limiter")?;
    const N: u64 = 2_000_000;
    let start = Instant::now();
    let mut yes = 0u64;
    for _ in 0..N {
        yes += u64::from(limiter.consume(std::hint::black_box(4096)));
    }
    let per_s = N as f64 / start.elapsed().as_secs_f64();
    anyhow::ensure!(yes == N, "the limiter refused {} of {N}", N - yes);
    // The peer: reading the clock, which every decision does once.
    let start = Instant::now();
    for _ in 0..N {
        std::hint::black_box(Instant::now());
    }
    let clock = N as f64 / start.elapsed().as_secs_f64();
    Ok(vec![Row {
        name: "rate limiter decision (ops + bandwidth)".into(),
        per_s,
        bytes: 0,
        peer: Some(clock),
    }])
}

pub fn run(seconds: f64) -> anyhow::Result<Vec<Row>> {
    let mut rows = blk_rows(seconds)?;
    rows.extend(net_rows(seconds)?);
    rows.extend(limiter_rows()?);
    Ok(rows)
}

pub fn render(rows: &[Row], seconds: f64) -> String {
    let mut s = format!(
        "virtio devices through the mock queue, {seconds} s per row; the peer is the same \
         system call made directly (for the limiter: one clock read)\n\n"
    );
    s.push_str("| workload | per second | GiB/s | ns each | peer per second | device vs peer |\n");
    s.push_str("|---|---|---|---|---|---|\n");
    for r in rows {
        let gib = if r.bytes > 0 {
            format!("{:.2}", r.per_s * r.bytes as f64 / (1u64 << 30) as f64)
        } else {
            "-".into()
        };
        let (peer, ratio) = match r.peer {
            Some(p) => (format!("{p:.0}"), format!("{:.2}x", r.per_s / p)),
            None => ("-".into(), "-".into()),
        };
        s.push_str(&format!(
            "| {} | {:.0} | {gib} | {:.0} | {peer} | {ratio} |\n",
            r.name,
            r.per_s,
            1e9 / r.per_s
        ));
    }
    s
}
