//! What the ReplicaSet controller needs of the kinds it manages: apps/v1 ReplicaSets and
//! their predecessor, core/v1 ReplicationControllers (an equality-only selector, the same
//! status), so that one controller keeps both.

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{PodTemplateSpec, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::kube::Object;

pub trait Replicated: Object {
    /// The controller's name, and the name it writes under.
    const CONTROLLER: &'static str;
    const MANAGER: &'static str;
    fn replicas(&self) -> i32;
    fn template(&self) -> Option<&PodTemplateSpec>;
    fn selector(&self) -> LabelSelector;
    fn min_ready_seconds(&self) -> i32;
    /// The status in ReplicaSet form (the fields are the same for both kinds).
    fn replica_status(&self) -> Option<ReplicaSetStatus>;
    fn set_replica_status(&mut self, status: ReplicaSetStatus);
}

impl Replicated for ReplicaSet {
    const CONTROLLER: &'static str = "replicaset";
    const MANAGER: &'static str = "replicaset-controller";

    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }

    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref().and_then(|s| s.template.as_ref())
    }

    fn selector(&self) -> LabelSelector {
        self.spec.as_ref().map(|s| s.selector.clone()).unwrap_or_default()
    }

    fn min_ready_seconds(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0)
    }

    fn replica_status(&self) -> Option<ReplicaSetStatus> {
        self.status.clone()
    }

    fn set_replica_status(&mut self, status: ReplicaSetStatus) {
        self.status = Some(status);
    }
}

impl Replicated for ReplicationController {
    const CONTROLLER: &'static str = "replicationcontroller";
    const MANAGER: &'static str = "replication-controller";

    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }

    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref().and_then(|s| s.template.as_ref())
    }

    fn selector(&self) -> LabelSelector {
        let labels = self.spec.as_ref().and_then(|s| s.selector.clone());
        LabelSelector { match_labels: labels, ..Default::default() }
    }

    fn min_ready_seconds(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0)
    }

    fn replica_status(&self) -> Option<ReplicaSetStatus> {
        let s = self.status.as_ref()?;
        serde_json::to_value(s).ok().and_then(|v| serde_json::from_value(v).ok())
    }

    fn set_replica_status(&mut self, status: ReplicaSetStatus) {
        // Same field names and types (conditions included): the JSON form carries over.
        self.status =
            serde_json::to_value(status).ok().and_then(|v| serde_json::from_value(v).ok());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_replication_controllers_status_and_selector_read_as_a_replica_sets() {
        let mut rc: ReplicationController = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {"replicas": 3, "selector": {"app": "web"}, "minReadySeconds": 5},
        }))
        .unwrap();
        assert_eq!(rc.replicas(), 3);
        assert_eq!(rc.min_ready_seconds(), 5);
        assert_eq!(rc.selector().match_labels, Some([("app".into(), "web".into())].into()));
        let status: ReplicaSetStatus = serde_json::from_value(json!({
            "replicas": 2, "readyReplicas": 1, "availableReplicas": 1,
            "fullyLabeledReplicas": 2, "observedGeneration": 4,
            "conditions": [{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate"}],
        }))
        .unwrap();
        rc.set_replica_status(status.clone());
        assert_eq!(rc.status.as_ref().map(|s| s.ready_replicas), Some(Some(1)));
        assert_eq!(rc.replica_status(), Some(status));
    }
}
