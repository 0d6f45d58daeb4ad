//! Helpers every workload controller uses: pod states as Kubernetes defines them, owner
//! references, pods stamped from templates, and int-or-percent fields.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::api::ApiError;
use crate::kube::{Informer, Kube, Object, ObjectKey, WorkQueue};

/// Not being deleted and not finished: counts towards a controller's replicas.
pub fn is_active(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none() && !matches!(phase(p), "Succeeded" | "Failed")
}

pub fn phase(p: &Pod) -> &str {
    p.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Pending")
}

fn ready_since(p: &Pod) -> Option<chrono::DateTime<chrono::Utc>> {
    let c = p.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")?;
    (c.status == "True").then(|| c.last_transition_time.as_ref().map(|t| t.0).unwrap_or_default())
}

pub fn is_ready(p: &Pod) -> bool {
    ready_since(p).is_some()
}

/// Ready for at least `min_ready_seconds`.
pub fn is_available(p: &Pod, min_ready_seconds: i32, now: chrono::DateTime<chrono::Utc>) -> bool {
    ready_since(p).is_some_and(|t| {
        min_ready_seconds <= 0 || t + chrono::Duration::seconds(min_ready_seconds.into()) <= now
    })
}

/// When a ready pod becomes available, if it is not yet.
pub fn available_in(
    p: &Pod,
    min_ready_seconds: i32,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<std::time::Duration> {
    let t = ready_since(p)? + chrono::Duration::seconds(min_ready_seconds.into());
    (t > now).then(|| (t - now).to_std().unwrap_or_default())
}

pub fn owner_ref<K: Object>(obj: &K) -> OwnerReference {
    let m = obj.metadata();
    OwnerReference {
        api_version: K::API_VERSION.into(),
        kind: K::KIND.into(),
        name: m.name.clone().unwrap_or_default(),
        uid: m.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The controlling owner reference, if any.
pub fn controller_of(m: &ObjectMeta) -> Option<&OwnerReference> {
    m.owner_references.as_ref()?.iter().find(|r| r.controller == Some(true))
}

/// No controller and not going away: what a controller whose selector matches may adopt.
pub fn is_orphan(m: &ObjectMeta) -> bool {
    controller_of(m).is_none() && m.deletion_timestamp.is_none()
}

/// Makes `owner` the controller of `obj`, as the informer saw it (a compare-and-swap: an
/// object changed meanwhile fails the sync, which is retried; one gone is left alone).
pub async fn adopt<K: Object, O: Object>(
    kube: &Kube,
    informer: &Informer<K>,
    obj: &K,
    owner: &O,
) -> Result<(), ApiError> {
    let mut o = obj.clone();
    o.metadata_mut().owner_references.get_or_insert_with(Vec::new).push(owner_ref(owner));
    match kube.update(&o).await {
        Ok(stored) => {
            informer.observe(stored);
            Ok(())
        }
        Err(e) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Objects `uid` controls, among `candidates`.
pub fn controlled_by<T: crate::kube::informer::Cached>(
    candidates: Vec<Arc<T>>,
    uid: &str,
) -> Vec<Arc<T>> {
    candidates
        .into_iter()
        .filter(|o| controller_of(o.meta()).is_some_and(|r| r.uid == uid))
        .collect()
}

/// A handler that queues the controlling owner of kind `kind` of whatever changed.
pub fn enqueue_owner<T: crate::kube::informer::Cached>(
    queue: &Arc<WorkQueue<ObjectKey>>,
    kind: &'static str,
) -> impl Fn(&crate::kube::Change<T>) + Send + Sync + 'static {
    let q = queue.clone();
    move |c| {
        let mut metas = vec![c.object().meta()];
        if let crate::kube::Change::Updated { old, .. } = c {
            metas.push(old.meta());
        }
        for m in metas {
            if let Some(r) = controller_of(m).filter(|r| r.kind == kind) {
                q.add(ObjectKey::new(m.namespace.as_deref(), &r.name));
            }
        }
    }
}

/// A pod for `owner` from its template (named `<prefix><random>` by the server).
pub fn pod_from_template(
    template: &PodTemplateSpec,
    namespace: &str,
    prefix: &str,
    owner: OwnerReference,
) -> Pod {
    let tm = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(prefix.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: tm.labels,
            annotations: tm.annotations,
            finalizers: tm.finalizers,
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// `v` as a count out of `total` (percentages round up or down).
pub fn scaled(v: Option<&IntOrString>, total: i32, default: i32, round_up: bool) -> i32 {
    match v {
        None => default,
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(s)) => {
            let pct: f64 = s.trim_end_matches('%').parse().unwrap_or(0.0);
            let x = pct * f64::from(total) / 100.0;
            (if round_up { x.ceil() } else { x.floor() }) as i32
        }
    }
}

/// Which pods to delete first when scaling down: unassigned, then pending, then not ready,
/// then the most recently ready (Kubernetes' ActivePods ordering, simplified).
pub fn deletion_order(pods: &mut [Arc<Pod>]) {
    pods.sort_by_key(|p| {
        let assigned =
            p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some_and(|n| !n.is_empty());
        let phase_rank = match phase(p) {
            "Pending" => 0,
            "Unknown" => 1,
            _ => 2,
        };
        let ready_at = ready_since(p).map(|t| std::cmp::Reverse(t.timestamp_millis()));
        (assigned, phase_rank, ready_at.is_some(), ready_at)
    });
}

pub fn labels(m: &ObjectMeta) -> BTreeMap<String, String> {
    m.labels.clone().unwrap_or_default()
}

/// FNV-1a (32 bit), as Kubernetes hashes pod templates.
pub fn fnv32a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193))
}

/// A hash as Kubernetes spells it in names (no vowels, no look-alike characters).
pub fn safe_encode(n: u32) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    n.to_string().bytes().map(|b| ALPHABET[usize::from(b) % ALPHABET.len()] as char).collect()
}

/// The hash of a pod template (plus a collision count), for `pod-template-hash` and
/// `controller-revision-hash`.
pub fn template_hash(template: &PodTemplateSpec, collisions: Option<i32>) -> String {
    let mut bytes = serde_json::to_vec(template).unwrap_or_default();
    if let Some(c) = collisions {
        bytes.extend(c.to_string().bytes());
    }
    safe_encode(fnv32a(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_or_percent_resolves_like_kubernetes() {
        let pct = IntOrString::String("25%".into());
        assert_eq!(scaled(Some(&pct), 10, 0, true), 3);
        assert_eq!(scaled(Some(&pct), 10, 0, false), 2);
        assert_eq!(scaled(Some(&IntOrString::Int(4)), 10, 0, false), 4);
        assert_eq!(scaled(None, 10, 1, false), 1);
    }

    #[test]
    fn hashes_are_stable_and_name_safe() {
        let t: PodTemplateSpec = serde_json::from_value(serde_json::json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}
        }))
        .unwrap();
        let h = template_hash(&t, None);
        assert_eq!(h, template_hash(&t.clone(), None));
        assert_ne!(h, template_hash(&t, Some(1)));
        assert!(h.chars().all(|c| c.is_ascii_alphanumeric() && !"aeiou013".contains(c)), "{h}");
    }
}
