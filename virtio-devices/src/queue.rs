//! Queues as devices see them: a virtio-queue [`Queue`] built from what the driver set up,
//! descriptor chains checked once against guest memory before a device touches them, and
//! completions that interrupt the driver.

use std::sync::Arc;

use virtio_queue::desc::split::Descriptor;
use virtio_queue::{DescriptorChain, Queue, QueueOwnedT, QueueT};
use vm_memory::{GuestAddress, GuestMemoryBackend};

use crate::{ActivateError, GuestMem, Interrupt, QueueConfig};

/// Builds the device side of queue `index` from the driver's setup.
pub fn build(
    index: usize,
    max_size: u16,
    cfg: &QueueConfig,
    mem: &GuestMem,
) -> Result<Queue, ActivateError> {
    let err = |why: String| ActivateError::Queue { index, why };
    let mut q = Queue::new(max_size).map_err(|e| err(e.to_string()))?;
    q.try_set_size(cfg.size).map_err(|e| err(e.to_string()))?;
    q.try_set_desc_table_address(GuestAddress(cfg.desc)).map_err(|e| err(e.to_string()))?;
    q.try_set_avail_ring_address(GuestAddress(cfg.avail)).map_err(|e| err(e.to_string()))?;
    q.try_set_used_ring_address(GuestAddress(cfg.used)).map_err(|e| err(e.to_string()))?;
    q.set_next_avail(cfg.position.next_avail);
    q.set_next_used(cfg.position.next_used);
    q.set_ready(true);
    if !q.is_valid(mem) {
        return Err(err("rings are misaligned or outside guest memory".into()));
    }
    Ok(q)
}

/// One buffer of a chain, known to lie inside one guest memory region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buffer {
    pub addr: GuestAddress,
    pub len: u32,
    pub writable: bool,
}

/// Why a chain was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("the chain is empty or its head is unreadable")]
    Empty,
    #[error("the chain loops, points outside its table, or is longer than the queue")]
    Truncated,
    #[error("the chain has more than {0} buffers")]
    TooLong(usize),
    #[error("a buffer at {addr:#x} (+{len}) is outside guest memory")]
    OutOfBounds { addr: u64, len: u32 },
    #[error("a device-readable buffer follows a device-writable one")]
    ReadableAfterWritable,
}

/// Collects the buffers of `chain` into `out` (reused between requests, so serving a chain
/// allocates nothing once `out` has grown), checking every one against guest memory.
pub fn gather<M>(
    chain: DescriptorChain<M>,
    mem: &GuestMem,
    max: usize,
    out: &mut Vec<Buffer>,
) -> Result<(), ChainError>
where
    M: std::ops::Deref,
    M::Target: vm_memory::GuestMemory,
{
    out.clear();
    let mut last: Option<Descriptor> = None;
    for d in chain {
        if out.len() == max {
            return Err(ChainError::TooLong(max));
        }
        let b = Buffer { addr: d.addr(), len: d.len(), writable: d.is_write_only() };
        if !b.writable && out.last().is_some_and(|p| p.writable) {
            return Err(ChainError::ReadableAfterWritable);
        }
        if mem.get_slice(b.addr, b.len as usize).is_err() {
            return Err(ChainError::OutOfBounds { addr: b.addr.0, len: b.len });
        }
        out.push(b);
        last = Some(d);
    }
    match last {
        None => Err(ChainError::Empty),
        // The iterator stops quietly on a loop or a bad index: the last buffer still says
        // "next".
        Some(d) if d.has_next() => Err(ChainError::Truncated),
        Some(_) => {
            if crate::dirty::tracking() {
                for b in out.iter().filter(|b| b.writable) {
                    crate::dirty::mark(b.addr.0, u64::from(b.len));
                }
            }
            Ok(())
        }
    }
}

/// Records the device-writable buffers of a chain a device parses itself (vsock's packets) as
/// written, for Diff snapshots.
pub fn mark_writable<M>(chain: &DescriptorChain<M>)
where
    M: std::ops::Deref + Clone,
    M::Target: vm_memory::GuestMemory,
{
    if crate::dirty::tracking() {
        for d in chain.clone().filter(|d| d.is_write_only()) {
            crate::dirty::mark(d.addr().0, u64::from(d.len()));
        }
    }
}

/// Pops the next available chain, or `None` when there is none or the avail ring is corrupt
/// (logged: the driver must reset the device).
pub fn pop<'m>(q: &mut Queue, mem: &'m GuestMem) -> Option<DescriptorChain<&'m GuestMem>> {
    match q.iter(mem) {
        Ok(mut it) => it.next(),
        Err(e) => {
            tracing::warn!("virtio queue: {e}");
            None
        }
    }
}

/// Returns chain `head` to the driver with `len` bytes written.
pub fn complete(q: &mut Queue, mem: &GuestMem, head: u16, len: u32) {
    if let Err(e) = q.add_used(mem, head, len) {
        tracing::warn!("virtio queue: returning a chain: {e}");
    }
    if crate::dirty::tracking() {
        // flags, idx, the ring, avail_event.
        crate::dirty::mark(q.used_ring(), 6 + 8 * u64::from(q.size()));
    }
}

/// Interrupts the driver if it wants to hear about the chains just completed.
pub fn notify(q: &mut Queue, mem: &GuestMem, interrupt: &Arc<dyn Interrupt>) {
    match q.needs_notification(mem) {
        Ok(false) => {}
        Ok(true) => interrupt.used_buffers(),
        Err(e) => {
            tracing::warn!("virtio queue: {e}");
            interrupt.used_buffers();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use virtio_bindings::bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
    use virtio_queue::desc::RawDescriptor;
    use virtio_queue::mock::MockSplitQueue;

    fn mem() -> GuestMem {
        GuestMem::from_ranges(&[(GuestAddress(0), 0x20_0000)]).unwrap()
    }

    fn raw(addr: u64, len: u32, flags: u32, next: u16) -> RawDescriptor {
        RawDescriptor::from(Descriptor::new(addr, len, flags as u16, next))
    }

    fn first_max(
        m: &GuestMem,
        descs: &[RawDescriptor],
        max: usize,
    ) -> Result<Vec<Buffer>, ChainError> {
        let mq = MockSplitQueue::new(m, 16);
        mq.add_desc_chains(descs, 0).unwrap();
        let mut q: Queue = mq.create_queue().unwrap();
        let chain = pop(&mut q, m).unwrap();
        let mut out = Vec::new();
        gather(chain, m, max, &mut out).map(|()| out)
    }

    fn first(m: &GuestMem, descs: &[RawDescriptor]) -> Result<Vec<Buffer>, ChainError> {
        first_max(m, descs, 64)
    }

    #[test]
    fn a_well_formed_chain_is_gathered_in_order() {
        let m = mem();
        let got = first(
            &m,
            &[raw(0x10_0000, 16, VRING_DESC_F_NEXT, 1), raw(0x10_1000, 1, VRING_DESC_F_WRITE, 0)],
        )
        .unwrap();
        assert_eq!(got.len(), 2);
        assert!(!got[0].writable && got[1].writable);
    }

    #[test]
    fn malformed_chains_are_refused() {
        let m = mem();
        let f = VRING_DESC_F_NEXT;
        // A loop: 0 -> 1 -> 0.
        assert_eq!(
            first(&m, &[raw(0x10_0000, 16, f, 1), raw(0x10_1000, 16, f, 0)]),
            Err(ChainError::Truncated)
        );
        // Next index beyond the table.
        assert_eq!(first(&m, &[raw(0x10_0000, 16, f, 200)]), Err(ChainError::Truncated));
        // A buffer outside memory, and one that wraps the address space.
        assert_eq!(
            first(&m, &[raw(0x30_0000, 16, 0, 0)]),
            Err(ChainError::OutOfBounds { addr: 0x30_0000, len: 16 })
        );
        assert!(matches!(
            first(&m, &[raw(u64::MAX - 4, 16, 0, 0)]),
            Err(ChainError::OutOfBounds { .. })
        ));
        // Readable after writable.
        assert_eq!(
            first(&m, &[raw(0x10_0000, 16, f | VRING_DESC_F_WRITE, 1), raw(0x10_1000, 16, 0, 0)]),
            Err(ChainError::ReadableAfterWritable)
        );
        // More buffers than the device takes.
        let long: Vec<_> = (0..10).map(|i| raw(0x10_0000, 1, f, i + 1)).collect();
        let mut long = long;
        long[9] = raw(0x10_0000, 1, 0, 0);
        assert_eq!(first_max(&m, &long, 8), Err(ChainError::TooLong(8)));
    }
}
