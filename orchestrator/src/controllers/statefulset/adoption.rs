//! Orphans a StatefulSet takes over: pods with one of its names and ControllerRevisions that
//! match its selector and have no controller. They are what a set deleted with
//! `--cascade=orphan` leaves, the usual way to change a field an update may not (its claim
//! templates, say): the new set of the same name carries on with the same pods and history
//! instead of failing to create names already taken.

use k8s_openapi::api::apps::v1::StatefulSet;

use super::StatefulSetController;
use super::identity::ordinal_of;
use crate::api::ApiError;
use crate::controllers::common::{adopt, is_orphan};
use crate::scheduler::matching;

impl StatefulSetController {
    pub(super) async fn adopt_orphans(&self, set: &StatefulSet) -> Result<(), ApiError> {
        let Some(spec) = set.spec.as_ref() else { return Ok(()) };
        let Some(selector) = matching::selector(&spec.selector).filter(|s| !s.is_empty()) else {
            return Ok(());
        };
        let ns = set.metadata.namespace.clone().unwrap_or_default();
        for pod in self.pods.select(&ns, &selector) {
            if is_orphan(&pod.metadata) && ordinal_of(set, &pod).is_some() {
                adopt(&self.kube, &self.pods, &*pod, set).await?;
            }
        }
        for rev in self.revisions.select(&ns, &selector) {
            if is_orphan(&rev.metadata) {
                adopt(&self.kube, &self.revisions, &*rev, set).await?;
            }
        }
        Ok(())
    }
}
