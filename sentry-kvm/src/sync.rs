//! The Sentry's mutex and condition variable: std's, plus two checks in debug builds, so that the
//! tests catch a deadlock where it is made rather than as a sandbox that never ends:
//! - no thread locks a mutex it already holds (with std's alone, a silent and permanent hang of
//!   the task: a guard kept alive across code that locks again, as in a signal wait and an
//!   AF_UNIX getpeername once);
//! - two kinds of mutex are always taken in the same order: a thread that holds one kind while
//!   it blocks on another records the order, and the opposite order anywhere later is a panic
//!   naming both places (two threads taking them in opposite orders at once would hang). A kind
//!   is where the mutex is made (its `Mutex::new`); only direct inversions are seen, not longer
//!   cycles, and `try_lock`, which cannot wait, sets no order.
//!
//! Release builds keep only std's mutex.

use std::ops::{Deref, DerefMut};
use std::sync::{LockResult, PoisonError, TryLockError, TryLockResult};
use std::time::Duration;

pub use std::sync::WaitTimeoutResult;

/// A mutual-exclusion lock: [`std::sync::Mutex`] with the checks.
pub struct Mutex<T: ?Sized> {
    /// Its kind, for the order check: where it was made.
    #[cfg(debug_assertions)]
    kind: &'static std::panic::Location<'static>,
    inner: std::sync::Mutex<T>,
}

/// The guard of a locked [`Mutex`].
pub struct MutexGuard<'a, T: ?Sized> {
    inner: Option<std::sync::MutexGuard<'a, T>>,
    at: Held,
}

impl<T> Mutex<T> {
    #[track_caller]
    pub const fn new(value: T) -> Mutex<T> {
        Mutex {
            #[cfg(debug_assertions)]
            kind: std::panic::Location::caller(),
            inner: std::sync::Mutex::new(value),
        }
    }

    pub fn into_inner(self) -> LockResult<T> {
        self.inner.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Locks it; in debug builds, panics when this thread holds it already (where std's would
    /// wait forever) or when it holds another kind of mutex that was once taken after this one.
    #[track_caller]
    pub fn lock(&self) -> LockResult<MutexGuard<'_, T>> {
        #[cfg(debug_assertions)]
        held::acquire(self.held(), std::panic::Location::caller(), true);
        match self.inner.lock() {
            Ok(g) => Ok(self.guard(g)),
            Err(p) => Err(PoisonError::new(self.guard(p.into_inner()))),
        }
    }

    /// Locks it if no one holds it (this thread included: then `WouldBlock`, as std's).
    #[track_caller]
    pub fn try_lock(&self) -> TryLockResult<MutexGuard<'_, T>> {
        let g = match self.inner.try_lock() {
            Ok(g) => g,
            Err(TryLockError::WouldBlock) => return Err(TryLockError::WouldBlock),
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
        };
        #[cfg(debug_assertions)]
        held::acquire(self.held(), std::panic::Location::caller(), false);
        Ok(self.guard(g))
    }

    pub fn get_mut(&mut self) -> LockResult<&mut T> {
        self.inner.get_mut()
    }

    fn guard<'a>(&'a self, g: std::sync::MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        MutexGuard { inner: Some(g), at: self.held() }
    }

    /// What the checks know it by.
    fn held(&self) -> Held {
        Held {
            addr: std::ptr::from_ref(&self.inner).cast::<u8>() as usize,
            // The type too: the fields of a derived Default are all made at the derive.
            #[cfg(debug_assertions)]
            kind: (self.kind, std::any::type_name::<T>()),
        }
    }
}

impl<T: Default> Default for Mutex<T> {
    #[track_caller]
    fn default() -> Mutex<T> {
        Mutex::new(T::default())
    }
}

/// A mutex as the checks know it: its address, and its kind (where it was made, and what it
/// holds).
#[derive(Clone, Copy)]
#[cfg_attr(not(debug_assertions), allow(dead_code))]
struct Held {
    addr: usize,
    #[cfg(debug_assertions)]
    kind: (&'static std::panic::Location<'static>, &'static str),
}

impl<T: ?Sized + std::fmt::Debug> std::fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.inner.as_deref().unwrap_or_else(|| unreachable!("a guard always holds its lock"))
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.inner.as_deref_mut().unwrap_or_else(|| unreachable!("a guard always holds its lock"))
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        #[cfg(debug_assertions)]
        held::release(self.at.addr);
    }
}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    /// Hands std's guard to a condition variable, which unlocks it while waiting.
    fn into_std(mut self) -> std::sync::MutexGuard<'a, T> {
        let g = self.inner.take().unwrap_or_else(|| unreachable!("a guard always holds its lock"));
        drop(self);
        g
    }

    #[track_caller]
    fn from_std(g: std::sync::MutexGuard<'a, T>, at: Held) -> MutexGuard<'a, T> {
        #[cfg(debug_assertions)]
        held::acquire(at, std::panic::Location::caller(), false);
        MutexGuard { inner: Some(g), at }
    }
}

/// A condition variable for [`Mutex`]: [`std::sync::Condvar`].
#[derive(Default, Debug)]
pub struct Condvar {
    inner: std::sync::Condvar,
}

impl Condvar {
    pub const fn new() -> Condvar {
        Condvar { inner: std::sync::Condvar::new() }
    }

    #[track_caller]
    pub fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> LockResult<MutexGuard<'a, T>> {
        let at = guard.at;
        match self.inner.wait(guard.into_std()) {
            Ok(g) => Ok(MutexGuard::from_std(g, at)),
            Err(p) => Err(PoisonError::new(MutexGuard::from_std(p.into_inner(), at))),
        }
    }

    #[track_caller]
    pub fn wait_timeout<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)> {
        let at = guard.at;
        match self.inner.wait_timeout(guard.into_std(), timeout) {
            Ok((g, t)) => Ok((MutexGuard::from_std(g, at), t)),
            Err(p) => {
                let (g, t) = p.into_inner();
                Err(PoisonError::new((MutexGuard::from_std(g, at), t)))
            }
        }
    }

    pub fn notify_one(&self) {
        self.inner.notify_one();
    }

    pub fn notify_all(&self) {
        self.inner.notify_all();
    }
}

/// The mutexes each thread holds, with where each was locked, and the orders seen so far.
#[cfg(debug_assertions)]
mod held {
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::panic::Location;

    use super::Held;

    type Place = &'static Location<'static>;
    type Kind = (Place, &'static str);

    thread_local! {
        static HELD: RefCell<Vec<(Held, Place)>> = const { RefCell::new(Vec::new()) };
    }

    /// (kind taken first, kind taken while holding it) -> where that happened first.
    static ORDER: std::sync::Mutex<BTreeMap<(Kind, Kind), Place>> =
        std::sync::Mutex::new(BTreeMap::new());

    /// Checks `m` before this thread takes it at `by` (`blocking`: it may wait for it), then
    /// records it held.
    pub fn acquire(m: Held, by: Place, blocking: bool) {
        let held: Vec<(Held, Place)> = HELD.with_borrow(|h| h.clone());
        if let Some((_, earlier)) = held.iter().find(|(h, _)| h.addr == m.addr) {
            panic!(
                "{by}: this thread locks a mutex it already holds (locked at {earlier}); \
                 std's mutex would wait forever"
            );
        }
        if blocking {
            let mut order = ORDER.lock().unwrap_or_else(|e| e.into_inner());
            for (h, locked_at) in held.iter().filter(|(h, _)| h.kind != m.kind) {
                if let Some(other_way) = order.get(&(m.kind, h.kind)) {
                    panic!(
                        "{by}: locks a mutex made at {} ({}) while holding one made at {} ({}, \
                         locked at {locked_at}), but at {other_way} they were taken the other \
                         way round: two threads doing both at once would wait for each other \
                         forever",
                        m.kind.0, m.kind.1, h.kind.0, h.kind.1
                    );
                }
                order.entry((h.kind, m.kind)).or_insert(by);
            }
        }
        HELD.with_borrow_mut(|h| h.push((m, by)));
    }

    pub fn release(addr: usize) {
        HELD.with_borrow_mut(|h| {
            if let Some(i) = h.iter().rposition(|(m, _)| m.addr == addr) {
                h.swap_remove(i);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "this thread locks a mutex it already holds")]
    fn locking_a_held_mutex_again_panics_instead_of_hanging() {
        let m = Mutex::new(1);
        let _held = m.lock().unwrap();
        let _again = m.lock();
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "they were taken the other way round")]
    fn taking_two_kinds_of_mutex_in_both_orders_panics() {
        let (a, b) = (Mutex::new(1), Mutex::new(2));
        {
            let _a = a.lock().unwrap();
            let _b = b.lock().unwrap();
        }
        // Both free again, and this thread alone: no hang yet, but the order is inverted.
        let _b = b.lock().unwrap();
        let _a = a.lock().unwrap();
    }

    #[test]
    fn try_lock_sets_no_order_and_mutexes_of_one_kind_nest_either_way() {
        let (a, b) = (Mutex::new(1), Mutex::new(2));
        {
            let _a = a.lock().unwrap();
            let _b = b.try_lock().unwrap();
        }
        let _b = b.lock().unwrap();
        let _a = a.lock().unwrap();
        drop((_a, _b));
        // Made at one place: one kind, whose members may be taken in any order.
        let pair: Vec<Mutex<u8>> = (0..2).map(|_| Mutex::new(0)).collect();
        {
            let _x = pair[0].lock().unwrap();
            let _y = pair[1].lock().unwrap();
        }
        let _y = pair[1].lock().unwrap();
        let _x = pair[0].lock().unwrap();
    }

    #[test]
    fn a_mutex_is_locked_again_once_its_guard_is_gone_and_try_lock_reports_it_held() {
        let m = Mutex::new(1);
        {
            let mut g = m.lock().unwrap();
            *g += 1;
            assert!(matches!(m.try_lock(), Err(TryLockError::WouldBlock)));
        }
        assert_eq!(*m.lock().unwrap(), 2);
        let other = Mutex::new(0);
        // Two different mutexes at once are fine.
        let (_a, _b) = (m.lock().unwrap(), other.lock().unwrap());
    }

    #[test]
    fn a_condition_variable_waits_and_wakes_through_the_checked_guard() {
        let pair = Arc::new((Mutex::new(false), Condvar::new()));
        let other = pair.clone();
        let t = std::thread::spawn(move || {
            *other.0.lock().unwrap() = true;
            other.1.notify_all();
        });
        let mut ready = pair.0.lock().unwrap();
        while !*ready {
            ready = pair.1.wait(ready).unwrap();
        }
        drop(ready);
        t.join().unwrap();
        // The wait handed the lock back and forth: it is free now, and the timeout works.
        let g = pair.0.lock().unwrap();
        let (_g, timeout) = pair.1.wait_timeout(g, Duration::from_millis(10)).unwrap();
        assert!(timeout.timed_out());
    }
}
