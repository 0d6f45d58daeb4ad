//! Events about objects (`kubectl describe` shows them): repeated events are counted on one
//! Event object; a full buffer drops events rather than slowing the caller.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use tokio::sync::mpsc;

use super::typed::{Kube, Object};
use crate::api::request::PatchType;

const BUFFER: usize = 1000;
/// Distinct events remembered for counting repeats.
const REMEMBERED: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

struct Pending {
    regarding: ObjectReference,
    kind: EventType,
    reason: String,
    message: String,
}

#[derive(Clone)]
pub struct EventRecorder {
    tx: mpsc::Sender<Pending>,
}

impl EventRecorder {
    /// Events are written by a task of their own, as `component`.
    pub fn new(kube: Kube, component: &str) -> Self {
        let (tx, rx) = mpsc::channel(BUFFER);
        tokio::spawn(writer(kube, component.to_owned(), rx));
        Self { tx }
    }

    pub fn record<K: Object>(&self, obj: &K, kind: EventType, reason: &str, message: String) {
        let m = obj.metadata();
        let regarding = ObjectReference {
            api_version: Some(K::API_VERSION.to_owned()),
            kind: Some(K::KIND.to_owned()),
            name: m.name.clone(),
            namespace: m.namespace.clone(),
            uid: m.uid.clone(),
            resource_version: m.resource_version.clone(),
            ..Default::default()
        };
        let _ = self.tx.try_send(Pending { regarding, kind, reason: reason.to_owned(), message });
    }
}

async fn writer(kube: Kube, component: String, mut rx: mpsc::Receiver<Pending>) {
    let mut seen: HashMap<(String, String, String), (String, i32)> = HashMap::new();
    while let Some(p) = rx.recv().await {
        let ns = p.regarding.namespace.clone().unwrap_or_else(|| "default".into());
        let id = (p.regarding.uid.clone().unwrap_or_default(), p.reason.clone(), p.message.clone());
        let now = Time(chrono::Utc::now());
        let known = seen.get(&id).cloned();
        if let Some((name, count)) = known {
            let patch = serde_json::json!({"count": count + 1, "lastTimestamp": now});
            let r = kube.patch::<Event>(Some(&ns), &name, PatchType::Merge, patch, None).await;
            if r.is_ok() {
                seen.insert(id, (name, count + 1));
                continue;
            }
        }
        let name = format!(
            "{}.{:x}",
            p.regarding.name.clone().unwrap_or_default(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
        );
        let ev = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            involved_object: p.regarding,
            reason: Some(p.reason),
            message: Some(p.message),
            type_: Some(format!("{:?}", p.kind)),
            count: Some(1),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            source: Some(EventSource { component: Some(component.clone()), host: None }),
            reporting_component: Some(component.clone()),
            ..Default::default()
        };
        match kube.create(&ev).await {
            Ok(_) => {
                if seen.len() >= REMEMBERED {
                    seen.clear();
                }
                seen.insert(id, (name, 1));
            }
            Err(e) => tracing::debug!("event {name}: {e}"),
        }
    }
}
