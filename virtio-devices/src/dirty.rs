//! Guest pages the devices write, for Diff snapshots: KVM's dirty log sees only what vCPUs
//! write, not what the VMM writes into guest memory on a device's behalf. Every byte a device
//! writes lies in a buffer that [`crate::queue::gather`] checked as device-writable, in a
//! used ring, or in a vsock receive or event buffer; those mark their pages here. A VMM runs
//! one machine, so the record is the process's own. Off (and free) until [`start`].

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

const PAGE_SHIFT: u64 = 12;

static TRACKING: AtomicBool = AtomicBool::new(false);
static PAGES: Mutex<BTreeSet<u64>> = Mutex::new(BTreeSet::new());

fn pages() -> std::sync::MutexGuard<'static, BTreeSet<u64>> {
    PAGES.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts recording (from an empty record).
pub fn start() {
    pages().clear();
    TRACKING.store(true, Ordering::SeqCst);
}

pub fn tracking() -> bool {
    TRACKING.load(Ordering::Relaxed)
}

/// Records that `len` bytes at guest address `addr` were (or may have been) written.
pub fn mark(addr: u64, len: u64) {
    if !tracking() || len == 0 {
        return;
    }
    let first = addr >> PAGE_SHIFT;
    let last = addr.saturating_add(len - 1) >> PAGE_SHIFT;
    pages().extend(first..=last);
}

/// The pages (guest address >> 12) written since the last call, and a fresh record.
pub fn take() -> BTreeSet<u64> {
    std::mem::take(&mut *pages())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_recorded_by_page_once_started() {
        mark(0x1000, 8);
        start();
        mark(0x1ffc, 8);
        mark(0x5000, 0);
        mark(0x9000, 1);
        assert_eq!(take().into_iter().collect::<Vec<_>>(), [1, 2, 9]);
        assert!(take().is_empty());
    }
}
