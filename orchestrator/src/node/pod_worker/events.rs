//! Events about a pod as the kubelet records them (source `kubelet` on this node), written
//! before the sync goes on so that they are there when the status shows their effect;
//! repeated failures are recorded once per worker.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use super::action::PodEvent;
use crate::kube::Kube;

/// The Event object for `event` about `pod`, reported by `node` at `now`.
pub fn event_object(pod: &Pod, node: &str, event: &PodEvent, now: Time) -> Event {
    let ns = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let name = pod.metadata.name.clone().unwrap_or_default();
    Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}.")),
            namespace: Some(ns.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            kind: Some("Pod".into()),
            api_version: Some("v1".into()),
            namespace: Some(ns),
            name: Some(name),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        },
        reason: Some(event.reason.clone()),
        message: Some(event.message.clone()),
        type_: Some(event.kind.to_string()),
        source: Some(EventSource { component: Some("kubelet".into()), host: Some(node.into()) }),
        reporting_component: Some("kubelet".into()),
        reporting_instance: Some(node.into()),
        count: Some(1),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        ..Default::default()
    }
}

/// Records one pod's Events.
pub struct Recorder {
    kube: Kube,
    node: String,
    /// (reason, message) of the once-only Events already recorded.
    recorded: HashSet<(String, String)>,
}

impl Recorder {
    pub fn new(kube: Kube, node: &str) -> Recorder {
        Recorder { kube, node: node.to_owned(), recorded: HashSet::new() }
    }

    pub async fn record(&mut self, pod: &Pod, event: PodEvent) {
        if event.once && !self.recorded.insert((event.reason.clone(), event.message.clone())) {
            return;
        }
        let ev = event_object(pod, &self.node, &event, Time(chrono::Utc::now()));
        if let Err(e) = self.kube.create(&ev).await {
            // Events are best effort, as in Kubernetes.
            tracing::debug!("recording event {} for {:?}: {e}", event.reason, pod.metadata.name);
        }
    }
}
