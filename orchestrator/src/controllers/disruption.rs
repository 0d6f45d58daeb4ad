//! Disruption: keeps each PodDisruptionBudget's status current from the pods it covers —
//! how many are healthy, how many must be, and so how many disruptions (evictions) it allows
//! now. Percentages and maxUnavailable are resolved against the scale of the pods'
//! controllers (a Deployment's, not its ReplicaSet's). Evictions spend `disruptionsAllowed`
//! and record the pod in `disruptedPods`; the controller forgets such a record once the pod
//! is going, or after two minutes if it never went.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, OwnerReference, Time};
use serde_json::Value;

use super::Context;
use super::common::{controller_of, is_ready};
use crate::api::disruption_budget::{DISRUPTION_TIMEOUT, IntOrPercent};
use crate::api::resources::{self, Subresource, split_api_version};
use crate::api::{ApiError, Operation};
use crate::kube::{Action, Controller, Informer, Kube, ObjectKey, Reconciler, WorkQueue};
use crate::scheduler::matching;

pub struct DisruptionController {
    kube: Kube,
    budgets: Arc<Informer<PodDisruptionBudget>>,
    pods: Arc<Informer<Pod>>,
}

pub fn controller(ctx: &Context) -> Controller {
    let queue = WorkQueue::new();
    let budgets = ctx.informers.get::<PodDisruptionBudget>();
    let pods = ctx.informers.get::<Pod>();
    let q = queue.clone();
    budgets.on_change(move |c| q.add(ObjectKey::of(&c.object().metadata)));
    let (q, b) = (queue.clone(), budgets.clone());
    pods.on_change(move |c| {
        let mut pods = vec![c.object().clone()];
        if let crate::kube::Change::Updated { old, .. } = c {
            pods.push(old.clone());
        }
        for p in pods {
            let ns = p.metadata.namespace.as_deref().unwrap_or_default();
            let labels = p.metadata.labels.clone().unwrap_or_default();
            for budget in b.list_in(ns).iter().filter(|b| covers(b, &labels)) {
                q.add(ObjectKey::of(&budget.metadata));
            }
        }
    });
    let reconciler = Arc::new(DisruptionController {
        kube: ctx.kube.named("disruption-controller"),
        budgets,
        pods,
    });
    Controller { name: "disruption", queue, reconciler, workers: ctx.config.workers }
}

fn covers(budget: &PodDisruptionBudget, labels: &BTreeMap<String, String>) -> bool {
    budget
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .and_then(matching::selector)
        .is_some_and(|s| s.matches(labels))
}

fn int_or_percent(
    v: &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString,
) -> Result<IntOrPercent, String> {
    IntOrPercent::parse(&serde_json::to_value(v).unwrap_or(Value::Null))
}

/// How many pods the budget expects and how many of them must be healthy.
enum Need {
    /// minAvailable as a number: out of the pods there are.
    OfPods(i64),
    /// A percentage or maxUnavailable: out of the controllers' scale.
    OfScale(Box<dyn Fn(i64) -> i64 + Send>),
    Nothing,
}

fn need(budget: &PodDisruptionBudget) -> Result<Need, String> {
    let spec = budget.spec.clone().unwrap_or_default();
    Ok(match (&spec.max_unavailable, &spec.min_available) {
        (Some(max), _) => {
            let max = int_or_percent(max)?;
            Need::OfScale(Box::new(move |n| (n - max.of(n)).max(0)))
        }
        (None, Some(min)) => match int_or_percent(min)? {
            IntOrPercent::Int(n) => Need::OfPods(n),
            pct => Need::OfScale(Box::new(move |n| pct.of(n))),
        },
        (None, None) => Need::Nothing,
    })
}

/// The budget's status given its pods, the expected and desired counts (or why they are not
/// known), at `now`; and when to look again for a disruption record to expire.
fn status(
    budget: &PodDisruptionBudget,
    pods: &[Arc<Pod>],
    counts: Result<(i64, i64), String>,
    now: chrono::DateTime<chrono::Utc>,
) -> (PodDisruptionBudgetStatus, Option<Duration>) {
    let old = budget.status.clone().unwrap_or_default();
    let mut disrupted = BTreeMap::new();
    let mut recheck: Option<Duration> = None;
    for (name, at) in old.disrupted_pods.iter().flatten() {
        let live = pods.iter().any(|p| {
            p.metadata.name.as_deref() == Some(name.as_str())
                && p.metadata.deletion_timestamp.is_none()
        });
        let expires = at.0 + DISRUPTION_TIMEOUT;
        if live && expires > now {
            disrupted.insert(name.clone(), at.clone());
            let wait = (expires - now).to_std().unwrap_or_default();
            recheck = Some(recheck.map_or(wait, |r| r.min(wait)));
        }
    }
    let healthy = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| !p.metadata.name.as_ref().is_some_and(|n| disrupted.contains_key(n)))
        .filter(|p| is_ready(p))
        .count() as i64;
    let (expected, desired, allowed, failure) = match counts {
        Ok((expected, desired)) => {
            let allowed = if expected <= 0 { 0 } else { (healthy - desired).max(0) };
            (expected, desired, allowed, None)
        }
        Err(e) => (i64::from(old.expected_pods), i64::from(old.desired_healthy), 0, Some(e)),
    };
    let (cond_status, reason, message) = match &failure {
        Some(e) => ("False", "SyncFailed", e.clone()),
        None if allowed > 0 => ("True", "SufficientPods", String::new()),
        None => ("False", "InsufficientPods", String::new()),
    };
    let previous = old.conditions.iter().flatten().find(|c| c.type_ == "DisruptionAllowed");
    let since = previous
        .filter(|c| c.status == cond_status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    let clamp = |n: i64| i32::try_from(n).unwrap_or(i32::MAX);
    let status = PodDisruptionBudgetStatus {
        current_healthy: clamp(healthy),
        desired_healthy: clamp(desired),
        expected_pods: clamp(expected),
        disruptions_allowed: clamp(allowed),
        disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
        observed_generation: budget.metadata.generation,
        conditions: Some(vec![Condition {
            type_: "DisruptionAllowed".into(),
            status: cond_status.into(),
            reason: reason.into(),
            message,
            last_transition_time: since,
            observed_generation: budget.metadata.generation,
        }]),
    };
    (status, recheck)
}

#[async_trait]
impl Reconciler for DisruptionController {
    async fn sync(&self, key: &ObjectKey) -> Result<Action, ApiError> {
        let Some(budget) = self.budgets.get(key) else { return Ok(Action::Done) };
        let ns = key.namespace.clone().unwrap_or_default();
        let labels_match =
            |p: &Arc<Pod>| covers(&budget, &p.metadata.labels.clone().unwrap_or_default());
        let pods: Vec<Arc<Pod>> = self.pods.list_in(&ns).into_iter().filter(labels_match).collect();
        let counts = match need(&budget) {
            Err(e) => Err(e),
            Ok(Need::Nothing) => Ok((0, 0)),
            Ok(Need::OfPods(n)) => Ok((pods.len() as i64, n)),
            Ok(Need::OfScale(f)) => {
                self.expected_scale(&ns, &pods).await.map(|expected| (expected, f(expected)))
            }
        };
        let (new, recheck) = status(&budget, &pods, counts, chrono::Utc::now());
        if budget.status.as_ref() != Some(&new) {
            let mut updated = (*budget).clone();
            updated.status = Some(new);
            // Carries the resourceVersion read: an eviction written since makes this a 409,
            // and the sync runs again on what it recorded.
            let stored = self.kube.update_status(&updated).await?;
            self.budgets.observe(stored);
        }
        Ok(recheck.map_or(Action::Done, Action::RequeueAfter))
    }
}

impl DisruptionController {
    /// The summed scale of the controllers of `pods`, each counted once.
    async fn expected_scale(&self, ns: &str, pods: &[Arc<Pod>]) -> Result<i64, String> {
        let mut seen = HashSet::new();
        let mut total = 0;
        for p in pods {
            let Some(owner) = controller_of(&p.metadata) else { continue };
            let owner = self.scaled_owner(ns, owner.clone()).await?;
            if seen.insert(owner.uid.clone()) {
                total += self.replicas(ns, &owner).await?;
            }
        }
        Ok(total)
    }

    /// The object whose scale counts for pods of `owner`: a ReplicaSet's Deployment, if any.
    async fn scaled_owner(
        &self,
        ns: &str,
        owner: OwnerReference,
    ) -> Result<OwnerReference, String> {
        if !(owner.kind == "ReplicaSet" && owner.api_version == "apps/v1") {
            return Ok(owner);
        }
        let rs: Option<k8s_openapi::api::apps::v1::ReplicaSet> =
            self.kube.get(Some(ns), &owner.name).await.map_err(|e| e.to_string())?;
        let parent = rs
            .filter(|rs| rs.metadata.uid.as_deref() == Some(owner.uid.as_str()))
            .and_then(|rs| controller_of(&rs.metadata).cloned())
            .filter(|r| r.kind == "Deployment");
        Ok(parent.unwrap_or(owner))
    }

    async fn replicas(&self, ns: &str, owner: &OwnerReference) -> Result<i64, String> {
        let (group, _) = split_api_version(&owner.api_version);
        let kind = resources::find_kind(group, &owner.kind)
            .filter(|k| k.has(Subresource::Scale))
            .ok_or_else(|| {
            format!("{}/{} {} has no scale subresource", group, owner.kind, owner.name)
        })?;
        let scale = self
            .kube
            .raw(kind, Some(ns), Some(&owner.name), Some(Subresource::Scale), Operation::Get)
            .await
            .map_err(|e| e.to_string())?;
        if scale["metadata"]["uid"] != owner.uid.as_str() {
            return Err(format!("{} {} was replaced", owner.kind, owner.name));
        }
        Ok(scale["spec"]["replicas"].as_i64().unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, ready: bool, deleting: bool) -> Arc<Pod> {
        let mut v = json!({"metadata": {"name": name, "labels": {"app": "web"}},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}});
        if deleting {
            v["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn budget(spec: Value, status: Value) -> PodDisruptionBudget {
        serde_json::from_value(
            json!({"metadata": {"name": "b", "generation": 2}, "spec": spec, "status": status}),
        )
        .unwrap()
    }

    #[test]
    fn healthy_pods_beyond_the_minimum_are_disruptions() {
        let b = budget(json!({"minAvailable": 2, "selector": {}}), json!({}));
        let pods = [pod("a", true, false), pod("b", true, false), pod("c", true, false)];
        let (s, _) = status(&b, &pods, Ok((3, 2)), chrono::Utc::now());
        assert_eq!((s.current_healthy, s.desired_healthy, s.disruptions_allowed), (3, 2, 1));
        assert_eq!(s.observed_generation, Some(2));
        assert_eq!(s.conditions.unwrap()[0].reason, "SufficientPods");
        // Deleting or unready pods are not healthy.
        let pods = [pod("a", true, false), pod("b", false, false), pod("c", true, true)];
        let (s, _) = status(&b, &pods, Ok((3, 2)), chrono::Utc::now());
        assert_eq!((s.current_healthy, s.disruptions_allowed), (1, 0));
    }

    #[test]
    fn recorded_evictions_count_until_they_expire() {
        let now = chrono::Utc::now();
        let recent = (now - chrono::TimeDelta::seconds(5)).to_rfc3339();
        let old = (now - chrono::TimeDelta::minutes(3)).to_rfc3339();
        let b = budget(json!({}), json!({"disruptedPods": {"a": recent, "b": old}}));
        let pods = [pod("a", true, false), pod("b", true, false), pod("c", true, false)];
        let (s, recheck) = status(&b, &pods, Ok((3, 1)), now);
        assert_eq!(s.disrupted_pods.unwrap().keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!((s.current_healthy, s.disruptions_allowed), (2, 1));
        assert!(recheck.is_some_and(|d| d <= Duration::from_secs(115)));
    }

    #[test]
    fn max_unavailable_resolves_against_the_scale() {
        let b = budget(json!({"maxUnavailable": "50%"}), json!({}));
        let Ok(Need::OfScale(f)) = need(&b) else { panic!("scale-based") };
        assert_eq!(f(3), 1, "50% of 3 rounds up to 2 unavailable");
        let failed = status(&b, &[], Err("no scale".into()), chrono::Utc::now()).0;
        assert_eq!(failed.disruptions_allowed, 0);
        assert_eq!(failed.conditions.unwrap()[0].reason, "SyncFailed");
    }
}
