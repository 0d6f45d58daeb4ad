//! The scheduling queue: pods waiting to be scheduled, highest priority first, then oldest.
//! A pod that failed waits in backoff (1 s doubling to 10 s); a pod no node could take waits
//! as unschedulable until the cluster changes (or a minute passes), like Kubernetes'
//! activeQ / backoffQ / unschedulablePods.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::Notify;

use crate::kube::ObjectKey;

const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
const MAX_UNSCHEDULABLE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Active,
    Backoff(Instant),
    Unschedulable(Instant),
}

struct Entry {
    pod: Arc<Pod>,
    attempts: u32,
    first_seen: Instant,
    place: Place,
    seq: u64,
}

/// A pod handed out for one scheduling attempt.
pub struct QueuedPod {
    pub pod: Arc<Pod>,
    pub key: ObjectKey,
    pub attempts: u32,
    pub first_seen: Instant,
    cycle: u64,
}

#[derive(Default)]
struct Inner {
    pods: HashMap<ObjectKey, Entry>,
    active: BinaryHeap<(i32, Reverse<u64>, ObjectKey)>,
    backoff: BTreeSet<(Instant, u64, ObjectKey)>,
    /// Pods being scheduled: their newest version (None once deleted).
    in_flight: HashMap<ObjectKey, Option<Arc<Pod>>>,
    seq: u64,
    cycle: u64,
    move_cycle: u64,
}

fn priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

/// Whether an update can change the scheduling outcome (status-only updates cannot).
fn relevant(old: &Pod, new: &Pod) -> bool {
    old.spec != new.spec
        || old.metadata.labels != new.metadata.labels
        || old.metadata.annotations != new.metadata.annotations
}

impl Inner {
    fn activate(&mut self, key: &ObjectKey) {
        self.seq += 1;
        let seq = self.seq;
        if let Some(e) = self.pods.get_mut(key) {
            e.place = Place::Active;
            e.seq = seq;
            self.active.push((priority(&e.pod), Reverse(seq), key.clone()));
        }
    }

    fn park(&mut self, key: &ObjectKey, until: Instant) {
        self.seq += 1;
        let seq = self.seq;
        if let Some(e) = self.pods.get_mut(key) {
            e.place = Place::Backoff(until);
            e.seq = seq;
            self.backoff.insert((until, seq, key.clone()));
        }
    }
}

/// How long a pod waits after its `attempts`-th failure.
fn backoff(attempts: u32) -> Duration {
    INITIAL_BACKOFF.saturating_mul(1 << attempts.saturating_sub(1).min(4)).min(MAX_BACKOFF)
}

pub struct SchedulingQueue {
    inner: Mutex<Inner>,
    ready: Notify,
}

impl Default for SchedulingQueue {
    fn default() -> Self {
        Self { inner: Mutex::new(Inner::default()), ready: Notify::new() }
    }
}

impl SchedulingQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new or changed pod that needs a node.
    pub fn add_or_update(&self, pod: Arc<Pod>) {
        let key = ObjectKey::of(&pod.metadata);
        let mut q = self.lock();
        if let Some(slot) = q.in_flight.get_mut(&key) {
            if slot.is_some() {
                *slot = Some(pod);
            }
            return;
        }
        match q.pods.get_mut(&key) {
            Some(e) => {
                let changed = relevant(&e.pod, &pod);
                e.pod = pod;
                if changed && matches!(e.place, Place::Unschedulable(_)) {
                    q.activate(&key);
                }
            }
            None => {
                q.pods.insert(
                    key.clone(),
                    Entry {
                        pod,
                        attempts: 0,
                        first_seen: Instant::now(),
                        place: Place::Active,
                        seq: 0,
                    },
                );
                q.activate(&key);
            }
        }
        drop(q);
        self.ready.notify_one();
    }

    pub fn delete(&self, key: &ObjectKey) {
        let mut q = self.lock();
        q.pods.remove(key);
        if let Some(slot) = q.in_flight.get_mut(key) {
            *slot = None;
        }
    }

    /// The cluster changed: unschedulable pods get another chance.
    pub fn move_all(&self) {
        let now = Instant::now();
        let mut q = self.lock();
        q.move_cycle = q.cycle;
        let waiting: Vec<(ObjectKey, Instant)> = q
            .pods
            .iter()
            .filter_map(|(k, e)| match e.place {
                Place::Unschedulable(failed) => Some((k.clone(), failed + backoff(e.attempts))),
                _ => None,
            })
            .collect();
        if waiting.is_empty() {
            return;
        }
        // Still inside its backoff since the last attempt: wait that out first.
        for (k, until) in waiting {
            if until > now {
                q.park(&k, until);
            } else {
                q.activate(&k);
            }
        }
        drop(q);
        self.ready.notify_one();
    }

    /// The next pod to schedule.
    pub async fn pop(&self) -> QueuedPod {
        loop {
            let notified = self.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let wait = {
                let mut q = self.lock();
                let now = Instant::now();
                while let Some((t, seq, k)) = q.backoff.first().cloned() {
                    if t > now {
                        break;
                    }
                    q.backoff.pop_first();
                    if q.pods.get(&k).is_some_and(|e| e.seq == seq) {
                        q.activate(&k);
                    }
                }
                let stale: Vec<ObjectKey> = q
                    .pods
                    .iter()
                    .filter(|(_, e)| {
                        matches!(e.place, Place::Unschedulable(t) if now.duration_since(t) > MAX_UNSCHEDULABLE)
                    })
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in stale {
                    q.activate(&k);
                }
                while let Some((_, Reverse(seq), key)) = q.active.pop() {
                    let fresh =
                        q.pods.get(&key).is_some_and(|e| e.seq == seq && e.place == Place::Active);
                    if !fresh {
                        continue;
                    }
                    let Some(e) = q.pods.remove(&key) else { continue };
                    q.cycle += 1;
                    let cycle = q.cycle;
                    q.in_flight.insert(key.clone(), Some(e.pod.clone()));
                    return QueuedPod {
                        pod: e.pod,
                        key,
                        attempts: e.attempts + 1,
                        first_seen: e.first_seen,
                        cycle,
                    };
                }
                q.backoff.first().map(|(t, _, _)| t.saturating_duration_since(now))
            };
            let wait = wait.unwrap_or(MAX_UNSCHEDULABLE).min(Duration::from_secs(5));
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// The attempt ended with the pod bound (or gone).
    pub fn done(&self, key: &ObjectKey) {
        self.lock().in_flight.remove(key);
    }

    /// The attempt failed: back to waiting, as unschedulable (no node fits) or in backoff
    /// (an error, or the cluster changed while it was being scheduled).
    pub fn requeue(&self, qp: QueuedPod, unschedulable: bool) {
        let now = Instant::now();
        let mut q = self.lock();
        let Some(Some(pod)) = q.in_flight.remove(&qp.key) else { return };
        let entry = Entry {
            pod,
            attempts: qp.attempts,
            first_seen: qp.first_seen,
            place: Place::Unschedulable(now),
            seq: 0,
        };
        q.pods.insert(qp.key.clone(), entry);
        if !unschedulable || q.move_cycle >= qp.cycle {
            q.park(&qp.key, now + backoff(qp.attempts));
        }
        drop(q);
        self.ready.notify_one();
    }

    /// Pods waiting (active, backing off or unschedulable).
    pub fn len(&self) -> usize {
        self.lock().pods.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, prio: i32) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "d"},
                "spec": {"containers": [], "priority": prio},
            }))
            .unwrap(),
        )
    }

    #[tokio::test]
    async fn higher_priority_first_then_fifo_and_unschedulable_waits_for_a_change() {
        let q = SchedulingQueue::default();
        q.add_or_update(pod("a", 0));
        q.add_or_update(pod("b", 10));
        q.add_or_update(pod("c", 0));
        let b = q.pop().await;
        assert_eq!(b.key.name, "b");
        assert_eq!(q.pop().await.key.name, "a");
        let c = q.pop().await;
        assert_eq!(c.key.name, "c");
        q.requeue(c, true);
        assert_eq!(q.len(), 1);
        let waited = tokio::time::timeout(Duration::from_millis(50), q.pop()).await;
        assert!(waited.is_err(), "an unschedulable pod waits");
        q.move_all();
        let c = tokio::time::timeout(Duration::from_secs(3), q.pop()).await.expect("moved back");
        assert_eq!(c.key.name, "c");
        // Deleted while in flight: not requeued.
        q.delete(&c.key);
        q.requeue(c, true);
        assert!(q.is_empty());
    }
}
