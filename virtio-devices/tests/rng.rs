//! virtio-rng through real descriptor chains.

use virtio_devices::VirtioDevice;
use virtio_devices::rng::Rng;
use virtio_devices::testing::{self, BUFFERS, Driver, VRING_DESC_F_WRITE as W};

#[test]
fn the_guest_gets_random_bytes_and_readable_buffers_are_refused() {
    let mem = testing::memory(4 << 20);
    let mut d = Driver::new(&mem, 0, 64);
    let mut dev = Rng::new();
    testing::activate(&mut dev, &mem, &[&d]);
    let head = d.submit(&[(BUFFERS, 4096, W), (BUFFERS + 0x2000, 100, W)]);
    dev.queue_notify(0);
    assert_eq!(d.used(), vec![(head, 4196)]);
    let a = d.read(BUFFERS, 4096);
    assert!(a.iter().filter(|&&b| b == 0).count() < 100, "not zeros");
    assert_ne!(a[..2048], a[2048..], "not a repeated pattern");
    let head = d.submit(&[(BUFFERS, 16, 0)]);
    let head2 = d.submit(&[(BUFFERS + 0x3000, 1 << 20, W)]);
    dev.queue_notify(0);
    assert_eq!(d.used(), vec![(head, 0), (head2, 64 * 1024)], "capped at 64 KiB per request");
    assert_eq!(dev.bytes(), 4196 + 65536);
}
