//! virtio-blk against guests made of fuzzer input: descriptor chains, request headers and
//! buffers all hostile, over a 64 KiB in-memory disk.
#![no_main]

use libfuzzer_sys::fuzz_target;
use virtio_devices::block::{Block, BlockConfig};

thread_local! {
    static DEVICE: std::cell::RefCell<Block> = std::cell::RefCell::new({
        let disk = tempfile::NamedTempFile::new().expect("a disk image");
        disk.as_file().set_len(64 * 1024).expect("sizing the disk");
        let (_, path) = disk.keep().expect("keeping the disk image");
        Block::new(&BlockConfig { path, ..Default::default() }).expect("the device")
    });
}

fuzz_target!(|data: &[u8]| {
    DEVICE.with(|d| virtio_devices::testing::fuzz_device(&mut *d.borrow_mut(), data));
});
