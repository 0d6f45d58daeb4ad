//! ResourceQuota: records each quota's `status.hard` (what admission enforces) and recounts
//! `status.used` from the objects its namespace holds. Admission charges creates as they
//! happen; this controller gives back what deletions (and finished pods) free, when they
//! happen, and recounts everything periodically for the kinds it does not watch.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Pod, ResourceQuota, ResourceQuotaStatus, Secret, Service,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::Context;
use crate::api::quota::{self, Usage};
use crate::api::resources::{self, Storage};
use crate::api::selector::LabelSelector;
use crate::kube::informer::Cached;
use crate::kube::{Action, Change, Controller, Informer, Kube, ObjectKey, Reconciler, WorkQueue};

/// How often every quota is recounted regardless of events.
const RESYNC: Duration = Duration::from_secs(30);

pub struct ResourceQuotaController {
    kube: Kube,
    quotas: Arc<Informer<ResourceQuota>>,
}

/// A handler that queues every quota of the namespace of an object that went away (or, for
/// pods, finished: a finished pod uses nothing).
fn on_release<T: Cached>(
    queue: &Arc<WorkQueue<ObjectKey>>,
    quotas: &Arc<Informer<ResourceQuota>>,
    finished: fn(&T) -> bool,
) -> impl Fn(&Change<T>) + Send + Sync + 'static {
    let (q, quotas) = (queue.clone(), quotas.clone());
    move |c| {
        let released = match c {
            Change::Deleted(_) => true,
            Change::Updated { old, new } => finished(new) && !finished(old),
            Change::Added(_) => false,
        };
        if released {
            let ns = c.object().meta().namespace.clone().unwrap_or_default();
            for quota in quotas.list_in(&ns) {
                q.add(ObjectKey::of(&quota.metadata));
            }
        }
    }
}

fn pod_finished(p: &Pod) -> bool {
    matches!(super::common::phase(p), "Succeeded" | "Failed")
}

pub fn controller(ctx: &Context) -> Controller {
    let queue = WorkQueue::new();
    let quotas = ctx.informers.get::<ResourceQuota>();
    let q = queue.clone();
    // Not on status writes: those are admission's charges, and a recount racing a create
    // that is charged but not yet stored would give its charge back.
    quotas.on_change(move |c| {
        let recount = match c {
            Change::Added(_) => true,
            Change::Updated { old, new } => old.spec != new.spec,
            Change::Deleted(_) => false,
        };
        if recount {
            q.add(ObjectKey::of(&c.object().metadata));
        }
    });
    ctx.informers.get::<Pod>().on_change(on_release(&queue, &quotas, pod_finished));
    ctx.informers.get::<Service>().on_change(on_release(&queue, &quotas, |_| false));
    ctx.informers.get::<ConfigMap>().on_change(on_release(&queue, &quotas, |_| false));
    ctx.informers.get::<Secret>().on_change(on_release(&queue, &quotas, |_| false));
    ctx.informers.get::<PersistentVolumeClaim>().on_change(on_release(&queue, &quotas, |_| false));
    let reconciler =
        Arc::new(ResourceQuotaController { kube: ctx.kube.named("resource-quota"), quotas });
    Controller { name: "resourcequota", queue, reconciler, workers: ctx.config.workers }
}

#[async_trait]
impl Reconciler for ResourceQuotaController {
    async fn sync(&self, key: &ObjectKey) -> Result<Action, crate::api::ApiError> {
        let Some(rq) = self.quotas.get(key) else { return Ok(Action::Done) };
        let ns = key.namespace.clone().unwrap_or_default();
        let hard = rq.spec.as_ref().and_then(|s| s.hard.clone()).unwrap_or_default();
        let quota_value = serde_json::to_value(&*rq)
            .map_err(|e| crate::api::ApiError::internal(format!("encoding a quota: {e}")))?;
        let mut used: Usage = hard.keys().map(|k| (k.clone(), 0)).collect();
        let counted = resources::KINDS.iter().filter(|k| {
            k.namespaced
                && k.storage == Storage::Stored
                && hard.keys().any(|r| quota::counted_for(k, r))
        });
        for kind in counted {
            let (objects, _) =
                self.kube.list_raw(kind, Some(&ns), LabelSelector::default()).await?;
            for obj in objects.iter().filter(|o| quota::governs(&quota_value, kind, o)) {
                for (r, amount) in quota::usage_of(kind, obj) {
                    if let Some(total) = used.get_mut(&r) {
                        *total += amount;
                    }
                }
            }
        }
        let used: BTreeMap<String, Quantity> = quota::used_value(&used)
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), Quantity(v.as_str().unwrap_or("0").to_owned())))
            .collect();
        let status = ResourceQuotaStatus { hard: Some(hard), used: Some(used) };
        if rq.status.as_ref() != Some(&status) {
            let mut updated = (*rq).clone();
            updated.status = Some(status);
            // The resourceVersion read goes with it: a charge admitted since makes this a 409,
            // and the count runs again from the charged status.
            let stored = self.kube.update_status(&updated).await?;
            self.quotas.observe(stored);
        }
        Ok(Action::RequeueAfter(RESYNC))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_kinds_follow_the_quota_names() {
        let pods = resources::find("", "v1", "pods").unwrap();
        let cms = resources::find("", "v1", "configmaps").unwrap();
        let deps = resources::find("apps", "v1", "deployments").unwrap();
        assert!(quota::counted_for(pods, "requests.cpu"));
        assert!(quota::counted_for(pods, "count/pods"));
        assert!(quota::counted_for(cms, "configmaps"));
        assert!(!quota::counted_for(cms, "pods"));
        assert!(quota::counted_for(deps, "count/deployments.apps"));
    }
}
