//! virtio-vsock against guests made of fuzzer input: packet headers, operations, ports and
//! credit all hostile, with a host listener for guest connections to port 1024.
#![no_main]

use libfuzzer_sys::fuzz_target;
use virtio_devices::vsock::{Vsock, VsockConfig};

thread_local! {
    static DEVICE: std::cell::RefCell<(Vsock, std::os::unix::net::UnixListener)> =
        std::cell::RefCell::new({
            let dir = tempfile::tempdir().expect("a directory").keep();
            let path = dir.join("v.sock");
            let listener = std::os::unix::net::UnixListener::bind(dir.join("v.sock_1024"))
                .expect("a host listener");
            listener.set_nonblocking(true).expect("non-blocking");
            (Vsock::new(&VsockConfig { guest_cid: 3, uds_path: path }).expect("the device"), listener)
        });
}

fuzz_target!(|data: &[u8]| {
    DEVICE.with(|d| {
        let (dev, listener) = &mut *d.borrow_mut();
        virtio_devices::testing::fuzz_device(dev, data);
        // Accept and drop what the guest connected, so the backlog never fills.
        while listener.accept().is_ok() {}
    });
});
