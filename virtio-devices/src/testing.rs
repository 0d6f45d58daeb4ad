//! A driver for tests and benchmarks: real descriptor chains in real guest memory through
//! virtio-queue's mock split queue, against a device activated on it (feature `testing`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use virtio_bindings::bindings::virtio_ring::VRING_DESC_F_NEXT;
pub use virtio_bindings::bindings::virtio_ring::VRING_DESC_F_WRITE;
use virtio_queue::desc::RawDescriptor;
use virtio_queue::desc::split::Descriptor;
use virtio_queue::mock::{AvailRing, DescriptorTable, UsedRing};
use vm_memory::{Bytes, GuestAddress};

use crate::{GuestMem, Interrupt, QueueConfig, VirtioDevice};

/// Counts interrupts.
#[derive(Default)]
pub struct Irq(pub AtomicUsize);

impl Interrupt for Irq {
    fn used_buffers(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn config_changed(&self) {}
}

/// Guest memory of `size` bytes from address 0. Queues go at the bottom, buffers from 1 MiB.
pub fn memory(size: usize) -> GuestMem {
    GuestMem::from_ranges(&[(GuestAddress(0), size)]).expect("test guest memory")
}

/// Where buffers may be placed (queues use the memory below).
pub const BUFFERS: u64 = 0x10_0000;
const QUEUE_STRIDE: u64 = 0x2_0000;

/// One driver-side queue, built from the mock's descriptor table and rings. (Its
/// `MockSplitQueue` places the used ring over the second half of the avail ring, which only
/// matters past a few entries, so the rings are laid out here.)
pub struct Driver<'m> {
    pub mem: &'m GuestMem,
    table: DescriptorTable<'m, GuestMem>,
    pub avail: AvailRing<'m, GuestMem>,
    used: UsedRing<'m, GuestMem>,
    addrs: (u64, u64, u64),
    size: u16,
    next_desc: u16,
    seen_used: u16,
}

impl<'m> Driver<'m> {
    /// Queue `index` of a device, of `size` entries.
    pub fn new(mem: &'m GuestMem, index: u16, size: u16) -> Driver<'m> {
        let desc = u64::from(index) * QUEUE_STRIDE;
        let avail = desc + 16 * u64::from(size);
        let used = (avail + 6 + 2 * u64::from(size)).next_multiple_of(4);
        Driver {
            mem,
            table: DescriptorTable::new(mem, GuestAddress(desc), size),
            avail: AvailRing::new(mem, GuestAddress(avail), size),
            used: UsedRing::new(mem, GuestAddress(used), size),
            addrs: (desc, avail, used),
            size,
            next_desc: 0,
            seen_used: 0,
        }
    }

    pub fn config(&self) -> QueueConfig {
        let (desc, avail, used) = self.addrs;
        QueueConfig { size: self.size, desc, avail, used, ..Default::default() }
    }

    /// Makes `chain` available: (address, length, flags) per buffer; NEXT links are added.
    /// Returns the head index.
    pub fn submit(&mut self, chain: &[(u64, u32, u32)]) -> u16 {
        let n = chain.len() as u16;
        if self.next_desc + n > self.size {
            self.next_desc = 0;
        }
        let head = self.next_desc;
        let descs: Vec<RawDescriptor> = chain
            .iter()
            .enumerate()
            .map(|(i, &(addr, len, flags))| {
                let last = i + 1 == chain.len();
                let flags = if last { flags } else { flags | VRING_DESC_F_NEXT };
                RawDescriptor::from(Descriptor::new(addr, len, flags as u16, head + i as u16 + 1))
            })
            .collect();
        for (i, d) in descs.iter().enumerate() {
            self.table.store(head + i as u16, *d).expect("writing a descriptor");
        }
        self.make_available(head);
        self.next_desc += n;
        head
    }

    /// Puts `head` in the next slot of the avail ring (modulo its size) and publishes it.
    fn make_available(&self, head: u16) {
        let idx = self.avail.idx().load();
        let slot = usize::from(idx % self.size);
        self.avail.ring().ref_at(slot).expect("avail slot").store(head);
        self.avail.idx().store(idx.wrapping_add(1));
    }

    /// Writes raw descriptors as they are (for malformed chains) from table `index`, and
    /// makes the first one available.
    pub fn submit_raw(&mut self, descs: &[RawDescriptor], index: u16) {
        for (i, d) in descs.iter().enumerate() {
            self.table.store(index + i as u16, *d).expect("writing a descriptor");
        }
        self.make_available(index);
    }

    /// The used entries added since the last call: (head, length).
    pub fn used(&mut self) -> Vec<(u16, u32)> {
        let idx = self.used.idx().load();
        let mut out = Vec::new();
        while self.seen_used != idx {
            let slot = usize::from(self.seen_used % self.size);
            let e = self.used.ring().ref_at(slot).expect("used slot").load();
            out.push((e.id() as u16, e.len()));
            self.seen_used = self.seen_used.wrapping_add(1);
        }
        out
    }

    pub fn write(&self, addr: u64, data: &[u8]) {
        self.mem.write_slice(data, GuestAddress(addr)).expect("writing guest memory");
    }

    pub fn read(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        self.mem.read_slice(&mut v, GuestAddress(addr)).expect("reading guest memory");
        v
    }
}

/// Activates `dev` on `drivers`' queues; returns the interrupt counter.
pub fn activate(dev: &mut dyn VirtioDevice, mem: &GuestMem, drivers: &[&Driver]) -> Arc<Irq> {
    let irq = Arc::new(Irq::default());
    let configs = drivers.iter().map(|d| d.config()).collect();
    dev.ack_features(dev.features());
    dev.activate(mem.clone(), configs, irq.clone()).expect("activation");
    irq
}

/// Entries of each queue a fuzzed guest gets.
pub const FUZZ_QUEUE_SIZE: u16 = 16;
/// Guest memory a fuzzed guest gets (its input is laid out from address 0).
pub const FUZZ_MEMORY: usize = 128 * 1024;

/// Where queue `i` of a fuzzed guest lives: descriptor table, avail and used rings at fixed
/// places in the first KiBs, which the input overwrites as it likes.
pub fn fuzz_queue(i: u64) -> QueueConfig {
    QueueConfig {
        size: FUZZ_QUEUE_SIZE,
        desc: i * 0x400,
        avail: i * 0x400 + 0x100,
        used: i * 0x400 + 0x200,
        ..Default::default()
    }
}

/// Runs `dev` against a guest made of `data`: the bytes become guest memory from address 0
/// (descriptor tables, rings, headers and buffers wherever the input puts them); every queue
/// is notified, the host side polled, and the device reset for the next input. Returns the
/// guest memory as the device left it.
pub fn fuzz_device(dev: &mut dyn VirtioDevice, data: &[u8]) -> GuestMem {
    let mem = memory(FUZZ_MEMORY);
    let n = data.len().min(FUZZ_MEMORY);
    mem.write_slice(&data[..n], GuestAddress(0)).expect("fuzz input into guest memory");
    let queues = (0..dev.queue_max_sizes().len() as u64).map(fuzz_queue).collect();
    dev.ack_features(dev.features());
    if dev.activate(mem.clone(), queues, Arc::new(Irq::default())).is_ok() {
        for q in 0..dev.queue_max_sizes().len() as u16 {
            dev.queue_notify(q);
        }
        dev.backend_ready();
    }
    dev.reset();
    mem
}
