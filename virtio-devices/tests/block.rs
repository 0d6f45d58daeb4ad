//! virtio-blk driven through real descriptor chains in guest memory (virtio-queue's mock
//! split queue), against real image files.

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;

use virtio_bindings::bindings::virtio_blk::*;
use virtio_bindings::bindings::virtio_ring::VRING_DESC_F_NEXT;
use virtio_devices::VirtioDevice;
use virtio_devices::block::{Block, BlockConfig};
use virtio_devices::rate_limiter::{BucketConfig, RateLimiterConfig};
use virtio_devices::testing::{self, BUFFERS, Driver, VRING_DESC_F_WRITE as W};
use virtio_queue::desc::RawDescriptor;
use virtio_queue::desc::split::Descriptor;

const HDR: u64 = BUFFERS;
const DATA: u64 = BUFFERS + 0x1000;
const STATUS: u64 = BUFFERS + 0x80_0000;

fn image(sectors: u64) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    let data: Vec<u8> = (0..sectors * 512).map(|i| (i * 7 % 251) as u8).collect();
    f.write_all(&data).unwrap();
    f
}

fn header(d: &Driver, ty: u32, sector: u64) {
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(&ty.to_le_bytes());
    h[8..16].copy_from_slice(&sector.to_le_bytes());
    d.write(HDR, &h);
}

fn status(d: &Driver) -> u8 {
    d.read(STATUS, 1)[0]
}

fn block(img: &tempfile::NamedTempFile, read_only: bool) -> Block {
    Block::new(&BlockConfig {
        path: img.path().into(),
        read_only,
        serial: Some("ringfence-disk-0".into()),
        rate_limiter: None,
    })
    .unwrap()
}

/// Runs one request and returns (used length, status byte).
fn run(dev: &mut Block, d: &mut Driver, chain: &[(u64, u32, u32)]) -> (u32, u8) {
    d.write(STATUS, &[0xee]);
    let head = d.submit(chain);
    dev.queue_notify(0);
    let used = d.used();
    assert_eq!(used.len(), 1, "exactly one chain returned");
    assert_eq!(used[0].0, head);
    (used[0].1, status(d))
}

#[test]
fn writes_and_reads_land_byte_exactly_in_the_file() {
    let img = image(64);
    let mem = testing::memory(16 << 20);
    let mut d = Driver::new(&mem, 0, 256);
    let mut dev = block(&img, false);
    let irq = testing::activate(&mut dev, &mem, &[&d]);

    let payload: Vec<u8> = (0..4096u32).map(|i| (i * 13 + 5) as u8).collect();
    d.write(DATA, &payload);
    header(&d, VIRTIO_BLK_T_OUT, 8);
    let r = run(&mut dev, &mut d, &[(HDR, 16, 0), (DATA, 4096, 0), (STATUS, 1, W)]);
    assert_eq!(r, (1, VIRTIO_BLK_S_OK as u8));
    let mut on_disk = vec![0u8; 4096];
    img.as_file().read_exact_at(&mut on_disk, 8 * 512).unwrap();
    assert_eq!(on_disk, payload);
    assert!(irq.0.load(Ordering::SeqCst) >= 1, "the driver was interrupted");

    // Read it back in three segments, the header split in two.
    header(&d, VIRTIO_BLK_T_IN, 8);
    let r = run(
        &mut dev,
        &mut d,
        &[
            (HDR, 4, 0),
            (HDR + 4, 12, 0),
            (DATA + 0x2000, 512, W),
            (DATA + 0x4000, 1536, W),
            (DATA + 0x8000, 2048, W),
            (STATUS, 1, W),
        ],
    );
    assert_eq!(r, (4097, VIRTIO_BLK_S_OK as u8));
    let back =
        [d.read(DATA + 0x2000, 512), d.read(DATA + 0x4000, 1536), d.read(DATA + 0x8000, 2048)]
            .concat();
    assert_eq!(back, payload);

    // Flush, GET_ID.
    header(&d, VIRTIO_BLK_T_FLUSH, 0);
    assert_eq!(run(&mut dev, &mut d, &[(HDR, 16, 0), (STATUS, 1, W)]), (1, 0));
    header(&d, VIRTIO_BLK_T_GET_ID, 0);
    let r = run(&mut dev, &mut d, &[(HDR, 16, 0), (DATA, 20, W), (STATUS, 1, W)]);
    assert_eq!(r, (21, 0));
    assert_eq!(&d.read(DATA, 20)[..16], b"ringfence-disk-0");
    let s = dev.stats();
    assert_eq!((s.write_bytes, s.read_bytes, s.flushes, s.requests), (4096, 4096, 1, 4));
}

#[test]
fn write_zeroes_and_discard_clear_the_range() {
    let img = image(64);
    let mem = testing::memory(16 << 20);
    let mut d = Driver::new(&mem, 0, 256);
    let mut dev = block(&img, false);
    testing::activate(&mut dev, &mem, &[&d]);
    for (ty, flags, sector) in
        [(VIRTIO_BLK_T_WRITE_ZEROES, 0u32, 4u64), (VIRTIO_BLK_T_WRITE_ZEROES, 1, 20)]
    {
        header(&d, ty, 0);
        let mut seg = [0u8; 16];
        seg[0..8].copy_from_slice(&sector.to_le_bytes());
        seg[8..12].copy_from_slice(&8u32.to_le_bytes());
        seg[12..16].copy_from_slice(&flags.to_le_bytes());
        d.write(DATA, &seg);
        assert_eq!(run(&mut dev, &mut d, &[(HDR, 16, 0), (DATA, 16, 0), (STATUS, 1, W)]), (1, 0));
        let mut back = vec![1u8; 4096];
        img.as_file().read_exact_at(&mut back, sector * 512).unwrap();
        assert!(back.iter().all(|&b| b == 0), "sectors {sector}.. are zero");
    }
    // The sector after each range is untouched.
    let mut after = [0u8; 1];
    img.as_file().read_exact_at(&mut after, 12 * 512).unwrap();
    assert_eq!(after[0], (12 * 512 * 7 % 251) as u8);
    header(&d, VIRTIO_BLK_T_DISCARD, 0);
    let mut seg = [0u8; 16];
    seg[0..8].copy_from_slice(&40u64.to_le_bytes());
    seg[8..12].copy_from_slice(&8u32.to_le_bytes());
    d.write(DATA, &seg);
    assert_eq!(run(&mut dev, &mut d, &[(HDR, 16, 0), (DATA, 16, 0), (STATUS, 1, W)]), (1, 0));
}

#[test]
fn a_read_only_disk_refuses_writes_and_says_so() {
    let img = image(8);
    let mem = testing::memory(16 << 20);
    let mut d = Driver::new(&mem, 0, 256);
    let mut dev = block(&img, true);
    assert_ne!(dev.features() & (1 << VIRTIO_BLK_F_RO), 0);
    testing::activate(&mut dev, &mem, &[&d]);
    let before = std::fs::read(img.path()).unwrap();
    d.write(DATA, &[0xaa; 512]);
    header(&d, VIRTIO_BLK_T_OUT, 0);
    let r = run(&mut dev, &mut d, &[(HDR, 16, 0), (DATA, 512, 0), (STATUS, 1, W)]);
    assert_eq!(r, (1, VIRTIO_BLK_S_IOERR as u8));
    assert_eq!(std::fs::read(img.path()).unwrap(), before);
    header(&d, VIRTIO_BLK_T_IN, 0);
    let r = run(&mut dev, &mut d, &[(HDR, 16, 0), (DATA, 512, W), (STATUS, 1, W)]);
    assert_eq!(r, (513, 0));
    assert_eq!(d.read(DATA, 512), before[..512]);
}

#[test]
fn malformed_requests_get_the_right_status_and_the_device_keeps_serving() {
    let img = image(16);
    let before = std::fs::read(img.path()).unwrap();
    // 80 MiB so that an oversized request still lies inside guest memory.
    let mem = testing::memory(80 << 20);
    let mut d = Driver::new(&mem, 0, 256);
    let mut dev = block(&img, false);
    testing::activate(&mut dev, &mem, &[&d]);
    let ioerr = VIRTIO_BLK_S_IOERR as u8;
    let unsupp = VIRTIO_BLK_S_UNSUPP as u8;
    let good = |dev: &mut Block, d: &mut Driver| {
        header(d, VIRTIO_BLK_T_IN, 1);
        let r = run(dev, d, &[(HDR, 16, 0), (DATA, 512, W), (STATUS, 1, W)]);
        assert_eq!(r, (513, 0), "a good request after a bad one");
        assert_eq!(d.read(DATA, 512), before[512..1024]);
    };

    // A zero-length header.
    header(&d, VIRTIO_BLK_T_IN, 0);
    assert_eq!(run(&mut dev, &mut d, &[(HDR, 0, 0), (DATA, 512, W), (STATUS, 1, W)]).1, ioerr);
    good(&mut dev, &mut d);
    // Data pointing the wrong way: a read whose data buffer is device-readable.
    header(&d, VIRTIO_BLK_T_IN, 0);
    assert_eq!(run(&mut dev, &mut d, &[(HDR, 16, 0), (DATA, 512, 0), (STATUS, 1, W)]).1, ioerr);
    // A write whose data is device-writable.
    header(&d, VIRTIO_BLK_T_OUT, 0);
    assert_eq!(run(&mut dev, &mut d, &[(HDR, 16, 0), (DATA, 512, W), (STATUS, 1, W)]).1, ioerr);
    good(&mut dev, &mut d);
    // Beyond the disk's end, and a sector number that overflows.
    for sector in [15, 16, u64::MAX / 512, u64::MAX] {
        header(&d, VIRTIO_BLK_T_IN, sector);
        let r = run(&mut dev, &mut d, &[(HDR, 16, 0), (DATA, 1024, W), (STATUS, 1, W)]);
        assert_eq!(r.1, ioerr, "sector {sector}");
    }
    // Not whole sectors.
    header(&d, VIRTIO_BLK_T_OUT, 0);
    assert_eq!(run(&mut dev, &mut d, &[(HDR, 16, 0), (DATA, 100, 0), (STATUS, 1, W)]).1, ioerr);
    // Oversized: 65 MiB in one buffer.
    header(&d, VIRTIO_BLK_T_IN, 0);
    assert_eq!(
        run(&mut dev, &mut d, &[(HDR, 16, 0), (DATA, 65 << 20, W), (STATUS, 1, W)]).1,
        ioerr
    );
    // An unknown request type.
    header(&d, 0x77, 0);
    assert_eq!(run(&mut dev, &mut d, &[(HDR, 16, 0), (STATUS, 1, W)]).1, unsupp);
    good(&mut dev, &mut d);
    // Too many descriptors: 130 data segments.
    header(&d, VIRTIO_BLK_T_IN, 0);
    let mut long = vec![(HDR, 16, 0)];
    long.extend((0..130).map(|i| (DATA + i * 512, 512, W)));
    long.push((STATUS, 1, W));
    assert_eq!(run(&mut dev, &mut d, &long), (1, ioerr));
    good(&mut dev, &mut d);
    // A buffer outside guest memory: nothing read or written but the status byte.
    header(&d, VIRTIO_BLK_T_IN, 0);
    let r = run(&mut dev, &mut d, &[(HDR, 16, 0), (0xffff_0000_0000, 512, W), (STATUS, 1, W)]);
    assert_eq!(r, (1, ioerr));
    // The status byte itself outside guest memory: returned unused.
    let r = run(&mut dev, &mut d, &[(HDR, 16, 0), (DATA, 512, W), (0xffff_0000_0000, 1, W)]);
    assert_eq!(r, (0, 0xee));
    // No status byte at all.
    header(&d, VIRTIO_BLK_T_FLUSH, 0);
    assert_eq!(run(&mut dev, &mut d, &[(HDR, 16, 0)]), (0, 0xee));
    good(&mut dev, &mut d);
    // A loop: 200 -> 201 -> 200.
    let raw = |addr, len, flags: u32, next| {
        RawDescriptor::from(Descriptor::new(addr, len, flags as u16, next))
    };
    d.write(STATUS, &[0xee]);
    d.submit_raw(
        &[raw(HDR, 16, VRING_DESC_F_NEXT, 201), raw(STATUS, 1, W | VRING_DESC_F_NEXT, 200)],
        200,
    );
    dev.queue_notify(0);
    assert_eq!(d.used(), vec![(200, 0)]);
    good(&mut dev, &mut d);
    assert_eq!(std::fs::read(img.path()).unwrap(), before, "nothing was written");
    assert!(dev.stats().refused >= 10);
}

#[test]
fn a_rate_limited_disk_pauses_and_resumes_on_its_timer() {
    let img = image(64);
    let mem = testing::memory(16 << 20);
    let mut d = Driver::new(&mem, 0, 256);
    let ops = BucketConfig { size: 2, one_time_burst: 0, refill_time: 50 };
    let mut dev = Block::new(&BlockConfig {
        path: img.path().into(),
        rate_limiter: Some(RateLimiterConfig { bandwidth: None, ops: Some(ops) }),
        ..Default::default()
    })
    .unwrap();
    testing::activate(&mut dev, &mem, &[&d]);
    header(&d, VIRTIO_BLK_T_IN, 0);
    for i in 0..5 {
        d.submit(&[(HDR, 16, 0), (DATA + i * 512, 512, W), (STATUS + i, 1, W)]);
    }
    dev.queue_notify(0);
    assert_eq!(d.used().len(), 2, "the bucket holds two requests");
    let fd = dev.backend_fd().expect("the limiter's timer");
    let mut served = 2;
    let started = std::time::Instant::now();
    while served < 5 {
        let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        assert_eq!(unsafe { libc::poll(&mut pfd, 1, 2000) }, 1, "the timer fires");
        dev.backend_ready();
        served += d.used().len();
    }
    // Three more requests at 2 per 50 ms take at least one refill period.
    assert!(started.elapsed() >= std::time::Duration::from_millis(25));
    assert!(dev.stats().throttled >= 1);
}

#[test]
fn a_corrupt_avail_index_is_survived() {
    let img = image(8);
    let mem = testing::memory(16 << 20);
    let mut d = Driver::new(&mem, 0, 256);
    let mut dev = block(&img, false);
    testing::activate(&mut dev, &mem, &[&d]);
    d.avail.idx().store(1000);
    dev.queue_notify(0);
    assert!(d.used().is_empty());
}
