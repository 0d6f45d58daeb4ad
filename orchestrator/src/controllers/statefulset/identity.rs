//! A StatefulSet pod's identity: its ordinal, its stable name `<set>-<ordinal>`, the labels
//! that name it and its revision, its hostname and subdomain (for the headless Service's DNS
//! names) and the claims its volumes mount.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::controllers::common::owner_ref;

pub const POD_NAME: &str = "statefulset.kubernetes.io/pod-name";
pub const POD_INDEX: &str = "apps.kubernetes.io/pod-index";
pub const REVISION_HASH: &str = "controller-revision-hash";

pub fn set_name(set: &StatefulSet) -> &str {
    set.metadata.name.as_deref().unwrap_or_default()
}

/// The first ordinal (`spec.ordinals.start`, 0 by default).
pub fn start_ordinal(set: &StatefulSet) -> i32 {
    set.spec.as_ref().and_then(|s| s.ordinals.as_ref()).and_then(|o| o.start).unwrap_or(0).max(0)
}

pub fn replicas(set: &StatefulSet) -> i32 {
    set.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1).max(0)
}

pub fn pod_name(set: &StatefulSet, ordinal: i32) -> String {
    format!("{}-{ordinal}", set_name(set))
}

/// The ordinal in a pod's name, if it is one of `set`'s names.
pub fn ordinal_of(set: &StatefulSet, pod: &Pod) -> Option<i32> {
    let name = pod.metadata.name.as_deref()?;
    let digits = name.strip_prefix(set_name(set))?.strip_prefix('-')?;
    // "01" is not a name the controller makes.
    if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) {
        return None;
    }
    digits.parse().ok().filter(|n: &i32| *n >= 0)
}

/// The revision a pod was made from (its `controller-revision-hash` label).
pub fn revision_of(pod: &Pod) -> Option<&str> {
    pod.metadata.labels.as_ref()?.get(REVISION_HASH).map(String::as_str)
}

/// The claim of template `claim` for the pod at `ordinal`: `<claim>-<set>-<ordinal>`.
pub fn claim_name(claim: &str, set: &StatefulSet, ordinal: i32) -> String {
    format!("{claim}-{}", pod_name(set, ordinal))
}

/// The names of the claim templates.
pub fn claim_templates(set: &StatefulSet) -> Vec<String> {
    set.spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| c.metadata.name.clone())
        .collect()
}

/// The pod at `ordinal` stamped from `template` (a revision's), labelled with `revision`.
pub fn new_pod(set: &StatefulSet, template: &PodTemplateSpec, ordinal: i32, revision: &str) -> Pod {
    let name = pod_name(set, ordinal);
    let tm = template.metadata.clone().unwrap_or_default();
    let mut labels = tm.labels.unwrap_or_default();
    labels.insert(POD_NAME.into(), name.clone());
    labels.insert(POD_INDEX.into(), ordinal.to_string());
    labels.insert(REVISION_HASH.into(), revision.to_owned());
    let mut spec = template.spec.clone().unwrap_or_default();
    spec.hostname = Some(name.clone());
    let service = set.spec.as_ref().map(|s| s.service_name.clone()).unwrap_or_default();
    spec.subdomain = service.filter(|s| !s.is_empty());
    // Each claim template replaces any volume of the same name in the pod template.
    let volumes = spec.volumes.get_or_insert_with(Vec::new);
    for claim in claim_templates(set) {
        volumes.retain(|v| v.name != claim);
        volumes.push(Volume {
            name: claim.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim_name(&claim, set, ordinal),
                read_only: None,
            }),
            ..Default::default()
        });
    }
    if volumes.is_empty() {
        spec.volumes = None;
    }
    Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: set.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: tm.annotations,
            finalizers: tm.finalizers,
            owner_references: Some(vec![owner_ref(set)]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// `pods` by ordinal; pods whose names are not the set's are left out.
pub fn by_ordinal(
    set: &StatefulSet,
    pods: Vec<Arc<Pod>>,
) -> std::collections::BTreeMap<i32, Arc<Pod>> {
    pods.into_iter().filter_map(|p| Some((ordinal_of(set, &p)?, p))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> StatefulSet {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1"},
            "spec": {
                "serviceName": "web",
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "c", "image": "i"}],
                                      "volumes": [{"name": "data", "emptyDir": {}}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "data"},
                                          "spec": {"accessModes": ["ReadWriteOnce"]}}]
            }
        }))
        .unwrap()
    }

    #[test]
    fn pods_carry_their_identity_and_claims() {
        let s = set();
        let t = s.spec.as_ref().unwrap().template.clone();
        let p = new_pod(&s, &t, 2, "web-abc");
        assert_eq!(p.metadata.name.as_deref(), Some("web-2"));
        let l = p.metadata.labels.clone().unwrap();
        assert_eq!(l[POD_NAME], "web-2");
        assert_eq!(l[POD_INDEX], "2");
        assert_eq!(l[REVISION_HASH], "web-abc");
        assert_eq!(l["app"], "web");
        let spec = p.spec.clone().unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("web-2"));
        assert_eq!(spec.subdomain.as_deref(), Some("web"));
        let vols = spec.volumes.unwrap();
        assert_eq!(vols.len(), 1, "the claim replaces the template's volume of its name");
        assert_eq!(vols[0].persistent_volume_claim.as_ref().unwrap().claim_name, "data-web-2");
        assert_eq!(ordinal_of(&s, &p), Some(2));
    }

    #[test]
    fn only_the_sets_names_have_ordinals() {
        let s = set();
        let named = |n: &str| Pod {
            metadata: ObjectMeta { name: Some(n.into()), ..Default::default() },
            ..Default::default()
        };
        assert_eq!(ordinal_of(&s, &named("web-0")), Some(0));
        assert_eq!(ordinal_of(&s, &named("web-12")), Some(12));
        for bad in ["web-", "web-01", "web-x", "webx-1", "web--1", "other-1"] {
            assert_eq!(ordinal_of(&s, &named(bad)), None, "{bad}");
        }
    }
}
