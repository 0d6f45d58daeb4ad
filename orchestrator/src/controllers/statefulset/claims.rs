//! Each pod's PersistentVolumeClaims, one per `volumeClaimTemplates` entry, named
//! `<claim>-<set>-<ordinal>` and made before the pod. They outlive the pod: a pod that comes
//! back under its name finds its claims again. `persistentVolumeClaimRetentionPolicy` says
//! what happens to them otherwise: Retain (the default) keeps them; `whenDeleted: Delete`
//! makes the set their owner, so they go with it; `whenScaled: Delete` deletes the claims
//! of ordinals a scale down removed, once their pod is gone.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::StatefulSetController;
use super::identity::{claim_name, claim_templates, replicas, set_name, start_ordinal};
use crate::api::ApiError;
use crate::controllers::common::owner_ref;
use crate::kube::ObjectKey;
use crate::kube::events::EventType;

/// The events a retention policy speaks of.
#[derive(Clone, Copy)]
enum When {
    Deleted,
    Scaled,
}

/// Whether the set's retention policy deletes its claims `when`.
fn policy_deletes(set: &StatefulSet, when: When) -> bool {
    let Some(p) =
        set.spec.as_ref().and_then(|s| s.persistent_volume_claim_retention_policy.as_ref())
    else {
        return false;
    };
    let policy = match when {
        When::Deleted => &p.when_deleted,
        When::Scaled => &p.when_scaled,
    };
    policy.as_deref() == Some("Delete")
}

/// The ordinal of a claim named `<template>-<set>-<ordinal>`, for one of the set's templates.
fn claim_ordinal(set: &StatefulSet, name: &str) -> Option<i32> {
    claim_templates(set).iter().find_map(|t| {
        let digits = name.strip_prefix(t.as_str())?.strip_prefix('-')?;
        let digits = digits.strip_prefix(set_name(set))?.strip_prefix('-')?;
        (!digits.is_empty() && (digits.len() == 1 || !digits.starts_with('0')))
            .then(|| digits.parse().ok())
            .flatten()
    })
}

impl StatefulSetController {
    /// Creates the claims of the pod at `ordinal` that do not exist yet.
    pub(super) async fn ensure_claims(
        &self,
        set: &StatefulSet,
        ordinal: i32,
    ) -> Result<(), ApiError> {
        let ns = set.metadata.namespace.clone();
        let templates =
            set.spec.as_ref().and_then(|s| s.volume_claim_templates.clone()).unwrap_or_default();
        let selector_labels =
            set.spec.as_ref().and_then(|s| s.selector.match_labels.clone()).unwrap_or_default();
        let owned = policy_deletes(set, When::Deleted);
        for t in templates {
            let Some(template_name) = t.metadata.name.clone() else { continue };
            let name = claim_name(&template_name, set, ordinal);
            if self.claims.get(&ObjectKey::new(ns.as_deref(), &name)).is_some() {
                continue;
            }
            let mut labels = t.metadata.labels.clone().unwrap_or_default();
            labels.extend(selector_labels.clone());
            let owner = owned.then(|| OwnerReference { controller: None, ..owner_ref(set) });
            let claim = PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: ns.clone(),
                    labels: Some(labels),
                    annotations: t.metadata.annotations.clone(),
                    owner_references: owner.map(|o| vec![o]),
                    ..Default::default()
                },
                spec: t.spec.clone(),
                status: None,
            };
            match self.kube.create(&claim).await {
                Ok(stored) => {
                    self.claims.observe(stored);
                    self.recorder.record(
                        set,
                        EventType::Normal,
                        "SuccessfulCreate",
                        format!(
                            "Created claim {name} for pod {}",
                            super::identity::pod_name(set, ordinal)
                        ),
                    );
                }
                // Made by an earlier sync and not seen yet: it is there, which is all we need.
                Err(e) if e.code == 409 => {}
                Err(e) => {
                    self.recorder.record(
                        set,
                        EventType::Warning,
                        "FailedCreate",
                        format!("Error creating claim {name}: {e}"),
                    );
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// With `whenScaled: Delete`, deletes the claims of ordinals beyond the replicas whose
    /// pod is gone.
    pub(super) async fn release_claims(
        &self,
        set: &StatefulSet,
        pods: &BTreeMap<i32, Arc<Pod>>,
    ) -> Result<(), ApiError> {
        if !policy_deletes(set, When::Scaled) {
            return Ok(());
        }
        let ns = set.metadata.namespace.clone().unwrap_or_default();
        let (start, end) = (start_ordinal(set), start_ordinal(set) + replicas(set));
        for claim in self.claims.list_in(&ns) {
            let name = claim.metadata.name.as_deref().unwrap_or_default();
            let Some(ordinal) = claim_ordinal(set, name) else { continue };
            if (start..end).contains(&ordinal)
                || pods.contains_key(&ordinal)
                || claim.metadata.deletion_timestamp.is_some()
            {
                continue;
            }
            self.delete_exact(&self.claims, &*claim).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_names_give_their_ordinal_back() {
        let set: StatefulSet = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {"selector": {}, "template": {},
                     "volumeClaimTemplates": [{"metadata": {"name": "data"}}]}
        }))
        .unwrap();
        assert_eq!(claim_ordinal(&set, &claim_name("data", &set, 4)), Some(4));
        assert_eq!(claim_ordinal(&set, "data-web-10"), Some(10));
        for other in ["data-web-", "data-web-01", "logs-web-1", "data-webx-1", "data-web-1x"] {
            assert_eq!(claim_ordinal(&set, other), None, "{other}");
        }
    }
}
