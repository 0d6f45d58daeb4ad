//! virtio-net against guests made of fuzzer input, frames going to and coming from a socket
//! pair instead of a tap.
#![no_main]

use std::os::fd::{AsRawFd, OwnedFd};

use libfuzzer_sys::fuzz_target;
use virtio_devices::net::tap::Tap;
use virtio_devices::net::{Net, NetConfig};

thread_local! {
    static DEVICE: std::cell::RefCell<(Net, OwnedFd)> = std::cell::RefCell::new({
        let (tap, peer) = Tap::socket_pair().expect("a socket pair");
        (Net::with_tap(tap, &NetConfig::default()).expect("the device"), peer)
    });
}

fuzz_target!(|data: &[u8]| {
    DEVICE.with(|d| {
        let (dev, peer) = &mut *d.borrow_mut();
        // A frame waiting for the guest, so receive chains are exercised too.
        let frame = [0u8; 60];
        // SAFETY: sending from a valid buffer.
        unsafe {
            libc::send(peer.as_raw_fd(), frame.as_ptr().cast(), frame.len(), libc::MSG_DONTWAIT)
        };
        virtio_devices::testing::fuzz_device(dev, data);
        let mut buf = [0u8; 2048];
        // SAFETY: draining into a stack buffer of its length.
        while unsafe {
            libc::recv(peer.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT)
        } > 0
        {}
    });
});
