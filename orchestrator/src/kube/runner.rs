//! The reconcile runner: workers take keys from a controller's queue and call its idempotent
//! `sync`; failures come back with backoff, `RequeueAfter` comes back on time.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::informer::Informers;
use super::key::ObjectKey;
use super::workqueue::WorkQueue;
use crate::api::ApiError;

/// What to do with a key after a successful sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing until something changes.
    Done,
    /// Look again after this long (deadlines, delays, polling).
    RequeueAfter(Duration),
}

#[async_trait]
pub trait Reconciler: Send + Sync + 'static {
    /// Brings the world in line with the object named `key` (which may be gone). Must be
    /// idempotent: it reads the current state and may run any number of times.
    async fn sync(&self, key: &ObjectKey) -> Result<Action, ApiError>;
}

/// One controller: a queue fed by informer handlers, and its reconciler.
pub struct Controller {
    pub name: &'static str,
    pub queue: Arc<WorkQueue<ObjectKey>>,
    pub reconciler: Arc<dyn Reconciler>,
    pub workers: usize,
}

impl Controller {
    /// Runs the workers once the informers have synced; returns their tasks.
    pub fn spawn(self, informers: Arc<Informers>) -> Vec<tokio::task::JoinHandle<()>> {
        (0..self.workers.max(1))
            .map(|_| {
                let (q, r, inf, name) =
                    (self.queue.clone(), self.reconciler.clone(), informers.clone(), self.name);
                tokio::spawn(async move {
                    inf.wait_synced().await;
                    loop {
                        let key = q.get().await;
                        tracing::trace!("{name}: syncing {key}");
                        match r.sync(&key).await {
                            Ok(Action::Done) => q.forget(&key),
                            Ok(Action::RequeueAfter(d)) => {
                                q.forget(&key);
                                q.add_after(key.clone(), d);
                            }
                            Err(e) => {
                                // Conflicts are routine: someone else wrote first.
                                if e.code == 409 {
                                    tracing::debug!("{name} {key}: {e}");
                                } else {
                                    tracing::info!("{name} {key}: {e}; retrying");
                                }
                                q.add_rate_limited(key.clone());
                            }
                        }
                        q.done(&key);
                    }
                })
            })
            .collect()
    }
}
