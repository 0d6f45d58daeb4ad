//! Creating and deleting a controller's pods (the role of Kubernetes' PodControl), shared by
//! the ReplicaSet, Job and DaemonSet controllers and the taint eviction of
//! [`super::node_lifecycle`]. Every write is observed into the pod informer at once, so the
//! controller's next sync counts what it just did instead of doing it again; each creation is
//! reported as a SuccessfulCreate or FailedCreate Event on the owner.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};

use super::common::{owner_ref, pod_from_template};
use crate::api::ApiError;
use crate::api::request::DeleteOptions;
use crate::kube::events::EventType;
use crate::kube::key::revision;
use crate::kube::{EventRecorder, Informer, Kube, Object, ObjectKey};

#[derive(Clone)]
pub struct PodControl {
    kube: Kube,
    pods: Arc<Informer<Pod>>,
    recorder: EventRecorder,
}

impl PodControl {
    pub fn new(kube: Kube, pods: Arc<Informer<Pod>>, recorder: EventRecorder) -> Self {
        Self { kube, pods, recorder }
    }

    /// Creates `pod` for `owner`.
    pub async fn create<K: Object>(&self, owner: &K, pod: &Pod) -> Result<(), ApiError> {
        match self.kube.create(pod).await {
            Ok(p) => {
                self.pods.observe(p);
                Ok(())
            }
            Err(e) => Err(self.failed_create(owner, e)),
        }
    }

    /// Creates `n` pods for `owner` from `template` in `namespace`, named `<prefix><random>`,
    /// in batches of 1, 2, 4, ... so that a failing template costs few calls. Stops at the
    /// first batch with a failure.
    pub async fn create_from_template<K: Object>(
        &self,
        owner: &K,
        template: &PodTemplateSpec,
        namespace: &str,
        prefix: &str,
        n: usize,
    ) -> Result<usize, ApiError> {
        let owner_ref = owner_ref(owner);
        let mut created = 0;
        let mut batch = 1;
        while created < n {
            let size = batch.min(n - created);
            let results = futures_util::future::join_all((0..size).map(|_| {
                let pod = pod_from_template(template, namespace, prefix, owner_ref.clone());
                async move { self.kube.create(&pod).await }
            }))
            .await;
            for r in results {
                let p = r.map_err(|e| self.failed_create(owner, e))?;
                let name = p.metadata.name.clone().unwrap_or_default();
                self.recorder.record(
                    owner,
                    EventType::Normal,
                    "SuccessfulCreate",
                    format!("Created pod: {name}"),
                );
                self.pods.observe(p);
                created += 1;
            }
            batch *= 2;
        }
        Ok(created)
    }

    /// Deletes `pod` only if it is still the object the controller decided about (a UID
    /// precondition: a new pod under the same name is left alone). A pod already gone or
    /// replaced is not an error.
    pub async fn delete(&self, pod: &Pod) -> Result<(), ApiError> {
        let key = ObjectKey::of(&pod.metadata);
        let opts =
            DeleteOptions { precondition_uid: pod.metadata.uid.clone(), ..Default::default() };
        match self.kube.delete::<Pod>(key.ns(), &key.name, opts).await {
            Ok(Some(marked)) if marked.metadata.deletion_timestamp.is_some() => {
                self.pods.observe(marked)
            }
            Ok(Some(gone)) => self.pods.observe_deleted(&key, revision(&gone.metadata)),
            Ok(None) => {}
            // The UID precondition failed: the name now belongs to another pod.
            Err(e) if e.code == 409 => {}
            Err(e) => return Err(e),
        }
        Ok(())
    }

    fn failed_create<K: Object>(&self, owner: &K, e: ApiError) -> ApiError {
        self.recorder.record(
            owner,
            EventType::Warning,
            "FailedCreate",
            format!("Error creating: {e}"),
        );
        e
    }
}
