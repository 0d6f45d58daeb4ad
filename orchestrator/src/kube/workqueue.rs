//! A work queue of keys, like client-go's: a key queued many times is processed once; a key is
//! never processed by two workers at once (re-added while in flight, it runs again after); failed
//! keys come back after an exponential, per-key backoff.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

const BASE_DELAY: Duration = Duration::from_millis(5);
const MAX_DELAY: Duration = Duration::from_secs(60);

struct Inner<K> {
    queue: VecDeque<K>,
    dirty: HashSet<K>,
    processing: HashSet<K>,
    failures: HashMap<K, u32>,
}

pub struct WorkQueue<K> {
    inner: Mutex<Inner<K>>,
    ready: Notify,
}

impl<K: Clone + Eq + Hash + Send + 'static> WorkQueue<K> {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner {
                queue: VecDeque::new(),
                dirty: HashSet::new(),
                processing: HashSet::new(),
                failures: HashMap::new(),
            }),
            ready: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn add(&self, key: K) {
        let mut q = self.lock();
        if !q.dirty.insert(key.clone()) {
            return;
        }
        if !q.processing.contains(&key) {
            q.queue.push_back(key);
            drop(q);
            self.ready.notify_one();
        }
    }

    /// Adds `key` once `delay` has passed.
    pub fn add_after(self: &Arc<Self>, key: K, delay: Duration) {
        if delay.is_zero() {
            return self.add(key);
        }
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if let Some(q) = me.upgrade() {
                q.add(key);
            }
        });
    }

    /// Adds `key` after its backoff, which doubles with each failure until [`Self::forget`].
    pub fn add_rate_limited(self: &Arc<Self>, key: K) {
        let n = {
            let mut q = self.lock();
            let n = q.failures.entry(key.clone()).or_default();
            *n += 1;
            *n
        };
        let delay = BASE_DELAY.saturating_mul(1u32 << (n - 1).min(20)).min(MAX_DELAY);
        self.add_after(key, delay);
    }

    pub fn forget(&self, key: &K) {
        self.lock().failures.remove(key);
    }

    /// The next key to process; call [`Self::done`] after.
    pub async fn get(&self) -> K {
        loop {
            let notified = self.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut q = self.lock();
                if let Some(k) = q.queue.pop_front() {
                    q.dirty.remove(&k);
                    q.processing.insert(k.clone());
                    if !q.queue.is_empty() {
                        self.ready.notify_one();
                    }
                    return k;
                }
            }
            notified.await;
        }
    }

    pub fn done(&self, key: &K) {
        let mut q = self.lock();
        q.processing.remove(key);
        if q.dirty.contains(key) {
            q.queue.push_back(key.clone());
            drop(q);
            self.ready.notify_one();
        }
    }

    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dedups_and_never_hands_out_a_key_twice_at_once() {
        let q = WorkQueue::new();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        let a = q.get().await;
        assert_eq!(a, "a");
        q.add("a"); // while in flight: held back
        assert_eq!(q.get().await, "b");
        assert!(q.is_empty());
        q.done(&"a");
        assert_eq!(q.get().await, "a");
    }

    #[tokio::test(start_paused = true)]
    async fn failures_back_off_exponentially() {
        let q = WorkQueue::new();
        for (failures, delay_ms) in [(1, 5), (2, 10), (3, 20)] {
            q.add_rate_limited("k");
            tokio::time::sleep(Duration::from_millis(delay_ms - 1)).await;
            assert!(q.is_empty(), "failure {failures} is held back");
            tokio::time::sleep(Duration::from_millis(2)).await;
            assert_eq!(q.len(), 1, "failure {failures} is back after {delay_ms} ms");
            let k = q.get().await;
            q.done(&k);
        }
        q.forget(&"k");
        q.add_rate_limited("k");
        tokio::time::sleep(Duration::from_millis(6)).await;
        assert_eq!(q.len(), 1, "forgotten: back to the base delay");
    }
}
