//! The StatefulSet's template history as ControllerRevisions: one per distinct pod template,
//! numbered in the order the templates were used. The revision of the set's template is the
//! update revision; `status.currentRevision` names the one the set is rolling away from. A
//! template used again (a `kubectl rollout undo`, which applies a revision's data as a
//! patch) reuses its revision, renumbered as the newest. Revisions beyond
//! `revisionHistoryLimit` that no pod uses are deleted, oldest first.

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use serde_json::{Value, json};

use super::StatefulSetController;
use super::identity::set_name;
use crate::api::ApiError;
use crate::controllers::common::{adopt, controller_of, fnv32a, is_orphan, owner_ref, safe_encode};

pub const HASH_LABEL: &str = "controller.kubernetes.io/hash";

/// The revisions a sync works from.
pub struct History {
    pub current: Arc<ControllerRevision>,
    pub update: Arc<ControllerRevision>,
}

impl History {
    pub fn current_name(&self) -> &str {
        self.current.metadata.name.as_deref().unwrap_or_default()
    }

    pub fn update_name(&self) -> &str {
        self.update.metadata.name.as_deref().unwrap_or_default()
    }
}

fn template(set: &StatefulSet) -> PodTemplateSpec {
    set.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default()
}

/// What a revision stores: the set's template as a strategic merge patch that puts it back
/// whole (`$patch: replace`), which is what `kubectl rollout undo` applies.
pub fn data_of(set: &StatefulSet) -> Value {
    let mut t = serde_json::to_value(template(set)).unwrap_or_else(|_| json!({}));
    if let Some(m) = t.as_object_mut() {
        m.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": t}})
}

/// The pod template a revision stores.
pub fn template_of(rev: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut t = rev.data.as_ref()?.0.pointer("/spec/template")?.clone();
    t.as_object_mut()?.remove("$patch");
    serde_json::from_value(t).ok()
}

/// The name-safe hash of a revision's data (and the set's collision count).
pub fn hash(data: &Value, collisions: Option<i32>) -> String {
    let mut bytes = serde_json::to_vec(data).unwrap_or_default();
    if let Some(c) = collisions {
        bytes.extend(c.to_string().bytes());
    }
    safe_encode(fnv32a(&bytes))
}

impl StatefulSetController {
    /// Finds or makes the update revision, and picks the current one. `revisions` are the
    /// set's own.
    pub(super) async fn history(
        &self,
        set: &StatefulSet,
        mut revisions: Vec<Arc<ControllerRevision>>,
    ) -> Result<History, ApiError> {
        revisions.sort_by_key(|r| (r.revision, r.metadata.creation_timestamp.clone().map(|t| t.0)));
        let newest = revisions.last().map_or(0, |r| r.revision);
        let want = template(set);
        let equal = revisions.iter().rev().find(|r| template_of(r).as_ref() == Some(&want));
        let update = match equal {
            Some(r) if r.revision < newest => {
                // The template came back (a rollback): its revision becomes the newest.
                let mut renumbered = (**r).clone();
                renumbered.revision = newest + 1;
                let stored = self.kube.update(&renumbered).await?;
                self.revisions.observe(stored.clone());
                Arc::new(stored)
            }
            Some(r) => r.clone(),
            None => Arc::new(self.create_revision(set, newest + 1).await?),
        };
        let current_name = set.status.as_ref().and_then(|s| s.current_revision.clone());
        let current = revisions
            .iter()
            .find(|r| r.metadata.name.is_some() && r.metadata.name == current_name)
            .cloned()
            .unwrap_or_else(|| update.clone());
        Ok(History { current, update })
    }

    async fn create_revision(
        &self,
        set: &StatefulSet,
        number: i64,
    ) -> Result<ControllerRevision, ApiError> {
        let data = data_of(set);
        let collisions = set.status.as_ref().and_then(|s| s.collision_count);
        let h = hash(&data, collisions);
        let name = format!("{}-{h}", set_name(set));
        let mut labels = template(set).metadata.and_then(|m| m.labels).unwrap_or_default();
        labels.insert(HASH_LABEL.into(), h);
        let rev = ControllerRevision {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: set.metadata.namespace.clone(),
                labels: Some(labels),
                owner_references: Some(vec![owner_ref(set)]),
                ..Default::default()
            },
            data: Some(RawExtension(data)),
            revision: number,
        };
        match self.kube.create(&rev).await {
            Ok(stored) => {
                self.revisions.observe(stored.clone());
                Ok(stored)
            }
            Err(e) if e.code == 409 => {
                let existing: Option<ControllerRevision> =
                    self.kube.get(set.metadata.namespace.as_deref(), &name).await?;
                match existing {
                    // Ours, not yet seen by the informer.
                    Some(x)
                        if controller_of(&x.metadata).map(|r| &r.uid)
                            == set.metadata.uid.as_ref()
                            && template_of(&x) == Some(template(set)) =>
                    {
                        self.revisions.observe(x.clone());
                        Ok(x)
                    }
                    // An orphan of a set of this name deleted with --cascade=orphan, which
                    // the adoption ran too early to see orphaned: taken over, and the sync
                    // retried with it in the history. Counting it as a collision made a new
                    // revision, and the adopted pods outdated (one was replaced).
                    Some(x) if is_orphan(&x.metadata) && template_of(&x) == Some(template(set)) => {
                        adopt(&self.kube, &self.revisions, &x, set).await?;
                        Err(e)
                    }
                    // A hash collision: the next try hashes with a higher count.
                    _ => {
                        let mut bumped = set.clone();
                        let status = bumped.status.get_or_insert_with(Default::default);
                        status.collision_count = Some(collisions.unwrap_or(0) + 1);
                        let stored = self.kube.update_status(&bumped).await?;
                        self.sets.observe(stored);
                        Err(e)
                    }
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Deletes the oldest revisions beyond the set's limit, keeping the current and update
    /// revisions and any a pod still runs.
    pub(super) async fn prune(
        &self,
        set: &StatefulSet,
        history: &History,
        mut revisions: Vec<Arc<ControllerRevision>>,
        in_use: &BTreeSet<String>,
    ) -> Result<(), ApiError> {
        let limit =
            set.spec.as_ref().and_then(|s| s.revision_history_limit).unwrap_or(10).max(0) as usize;
        revisions.retain(|r| {
            let name = r.metadata.name.as_deref().unwrap_or_default();
            name != history.current_name()
                && name != history.update_name()
                && !in_use.contains(name)
                && r.metadata.deletion_timestamp.is_none()
        });
        revisions.sort_by_key(|r| r.revision);
        let excess = revisions.len().saturating_sub(limit);
        for r in revisions.into_iter().take(excess) {
            self.delete_exact(&self.revisions, &*r).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_a_patch_that_gives_the_template_back() {
        let set: StatefulSet = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {"selector": {}, "template": {"metadata": {"labels": {"app": "web"}},
                     "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}}
        }))
        .unwrap();
        let data = data_of(&set);
        assert_eq!(data["spec"]["template"]["$patch"], "replace");
        let rev = ControllerRevision {
            metadata: Default::default(),
            data: Some(RawExtension(data.clone())),
            revision: 1,
        };
        assert_eq!(template_of(&rev), Some(template(&set)));
        assert_eq!(hash(&data, None), hash(&data.clone(), None));
        assert_ne!(hash(&data, None), hash(&data, Some(1)));
    }
}
