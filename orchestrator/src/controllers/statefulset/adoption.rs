//! Orphans a StatefulSet takes over: pods with one of its names and ControllerRevisions that
//! match its selector and have no controller. They are what a set deleted with
//! `--cascade=orphan` leaves, the usual way to change a field an update may not (its claim
//! templates, say): the new set of the same name carries on with the same pods and history
//! instead of failing to create names already taken.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::StatefulSet;

use super::StatefulSetController;
use super::identity::ordinal_of;
use crate::api::ApiError;
use crate::controllers::common::{controller_of, owner_ref};
use crate::kube::{Informer, Object};
use crate::scheduler::matching;

/// `obj` with `set` added as its controller.
fn adopted<K: Object>(obj: &K, set: &StatefulSet) -> K {
    let mut o = obj.clone();
    o.metadata_mut().owner_references.get_or_insert_with(Vec::new).push(owner_ref(set));
    o
}

impl StatefulSetController {
    pub(super) async fn adopt_orphans(&self, set: &StatefulSet) -> Result<(), ApiError> {
        let Some(spec) = set.spec.as_ref() else { return Ok(()) };
        let Some(selector) = matching::selector(&spec.selector).filter(|s| !s.is_empty()) else {
            return Ok(());
        };
        let ns = set.metadata.namespace.clone().unwrap_or_default();
        let orphan = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
            controller_of(m).is_none() && m.deletion_timestamp.is_none()
        };
        for pod in self.pods.select(&ns, &selector) {
            if orphan(&pod.metadata) && ordinal_of(set, &pod).is_some() {
                self.adopt(&self.pods, &adopted(&*pod, set)).await?;
            }
        }
        for rev in self.revisions.select(&ns, &selector) {
            if orphan(&rev.metadata) {
                self.adopt(&self.revisions, &adopted(&*rev, set)).await?;
            }
        }
        Ok(())
    }

    /// Writes the adoption (a compare-and-swap on what the informer saw): an object changed
    /// or gone meanwhile is looked at again on the next sync.
    async fn adopt<K: Object>(&self, informer: &Arc<Informer<K>>, obj: &K) -> Result<(), ApiError> {
        match self.kube.update(obj).await {
            Ok(stored) => {
                informer.observe(stored);
                Ok(())
            }
            Err(e) if e.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }
}
