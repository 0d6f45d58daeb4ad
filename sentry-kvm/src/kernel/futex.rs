//! Futexes: wait queues keyed by the address of a 32-bit word in application memory.

use crate::sync::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use crate::abi::Errno;
use crate::kernel::task::Task;
use crate::mm::address_space::MemoryManager;
use crate::waiter::Waker;

pub const FUTEX_WAIT: u32 = 0;
pub const FUTEX_WAKE: u32 = 1;
pub const FUTEX_REQUEUE: u32 = 3;
pub const FUTEX_CMP_REQUEUE: u32 = 4;
pub const FUTEX_WAKE_OP: u32 = 5;
pub const FUTEX_LOCK_PI: u32 = 6;
pub const FUTEX_UNLOCK_PI: u32 = 7;
pub const FUTEX_WAIT_BITSET: u32 = 9;
pub const FUTEX_WAKE_BITSET: u32 = 10;
pub const FUTEX_PRIVATE_FLAG: u32 = 128;
pub const FUTEX_CLOCK_REALTIME: u32 = 256;
pub const FUTEX_BITSET_MATCH_ANY: u32 = u32::MAX;

/// Identity of a futex word: an address in one address space, or a frame shared by several.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FutexKey {
    Private { mm: u64, addr: u64 },
    Shared { phys: u64 },
}

impl FutexKey {
    pub fn of(mm: &MemoryManager, addr: u64, private: bool) -> Result<FutexKey, Errno> {
        if !addr.is_multiple_of(4) {
            return Err(Errno::EINVAL);
        }
        if private {
            return Ok(FutexKey::Private { mm: mm.id(), addr });
        }
        let (phys, shared) = mm.futex_frame(addr)?;
        Ok(if shared {
            FutexKey::Shared { phys: phys.0 }
        } else {
            FutexKey::Private { mm: mm.id(), addr }
        })
    }
}

struct FutexWaiter {
    id: u64,
    waker: Arc<Waker>,
    woken: Arc<AtomicBool>,
    bitset: u32,
}

static NEXT_WAITER: AtomicU64 = AtomicU64::new(1);

#[derive(Default)]
pub struct FutexTable {
    queues: Mutex<HashMap<FutexKey, Vec<FutexWaiter>>>,
}

impl FutexTable {
    #[track_caller]
    fn lock(&self) -> crate::sync::MutexGuard<'_, HashMap<FutexKey, Vec<FutexWaiter>>> {
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// FUTEX_WAIT: sleeps while the word at `addr` equals `expected`.
    pub fn wait(
        &self,
        task: &Task,
        key: FutexKey,
        addr: u64,
        expected: u32,
        bitset: u32,
        deadline: Option<Instant>,
    ) -> Result<(), Errno> {
        if bitset == 0 {
            return Err(Errno::EINVAL);
        }
        let id = NEXT_WAITER.fetch_add(1, Ordering::Relaxed);
        let woken = Arc::new(AtomicBool::new(false));
        {
            let mut q = self.lock();
            let mut word = [0u8; 4];
            task.mm().copy_in(addr, &mut word)?;
            if u32::from_le_bytes(word) != expected {
                return Err(Errno::EAGAIN);
            }
            q.entry(key).or_default().push(FutexWaiter {
                id,
                waker: task.waker.clone(),
                woken: woken.clone(),
                bitset,
            });
        }
        loop {
            if woken.load(Ordering::SeqCst) {
                return Ok(());
            }
            if let Err(e) = task.block(deadline) {
                let mut q = self.lock();
                if woken.load(Ordering::SeqCst) {
                    return Ok(());
                }
                // The waiter may have been requeued to another key.
                for v in q.values_mut() {
                    v.retain(|w| w.id != id);
                }
                q.retain(|_, v| !v.is_empty());
                return Err(e);
            }
        }
    }

    /// FUTEX_WAKE: wakes up to `n` waiters whose bitset intersects `bitset`.
    pub fn wake(&self, key: FutexKey, n: u32, bitset: u32) -> u32 {
        let mut q = self.lock();
        Self::wake_locked(&mut q, key, n, bitset)
    }

    fn wake_locked(
        q: &mut HashMap<FutexKey, Vec<FutexWaiter>>,
        key: FutexKey,
        n: u32,
        bitset: u32,
    ) -> u32 {
        let Some(v) = q.get_mut(&key) else { return 0 };
        let mut woken = 0;
        v.retain(|w| {
            if woken < n && w.bitset & bitset != 0 {
                woken += 1;
                w.woken.store(true, Ordering::SeqCst);
                w.waker.wake();
                false
            } else {
                true
            }
        });
        if v.is_empty() {
            q.remove(&key);
        }
        woken
    }

    /// FUTEX_REQUEUE / FUTEX_CMP_REQUEUE.
    #[allow(clippy::too_many_arguments)]
    pub fn requeue(
        &self,
        mm: &MemoryManager,
        from: FutexKey,
        to: FutexKey,
        addr: u64,
        wake: u32,
        requeue: u32,
        expected: Option<u32>,
    ) -> Result<u32, Errno> {
        let mut q = self.lock();
        if let Some(e) = expected {
            let mut word = [0u8; 4];
            mm.copy_in(addr, &mut word)?;
            if u32::from_le_bytes(word) != e {
                return Err(Errno::EAGAIN);
            }
        }
        let woken = Self::wake_locked(&mut q, from, wake, FUTEX_BITSET_MATCH_ANY);
        let mut moved = Vec::new();
        if let Some(v) = q.get_mut(&from) {
            let n = (requeue as usize).min(v.len());
            moved.extend(v.drain(..n));
            if v.is_empty() {
                q.remove(&from);
            }
        }
        let count = moved.len() as u32;
        q.entry(to).or_default().extend(moved);
        Ok(woken + count)
    }
}
