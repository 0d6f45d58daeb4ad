//! What every namespace gets for its pods' identities, as kube-controller-manager provides:
//! a `default` ServiceAccount ([`default_account`]) and the `kube-root-ca.crt` ConfigMap
//! holding the cluster CA that in-cluster clients verify the API server with
//! ([`root_ca`]). Both are recreated when deleted and, for the ConfigMap, repaired when
//! changed.

pub mod default_account;
pub mod root_ca;

use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;

use crate::kube::{Change, Informer, ObjectKey, WorkQueue};

/// Queues every namespace on its own changes, and a namespace whose object named `name`
/// (kept by `informer`) was deleted or changed.
fn queue_namespaces<T: crate::kube::Object>(
    namespaces: &Arc<Informer<Namespace>>,
    informer: &Arc<Informer<T>>,
    name: &'static str,
) -> Arc<WorkQueue<ObjectKey>> {
    let queue = WorkQueue::new();
    let q = queue.clone();
    namespaces.on_change(move |c| q.add(ObjectKey::of(&c.object().metadata)));
    let q = queue.clone();
    informer.on_change(move |c: &Change<T>| {
        let m = c.object().metadata();
        if m.name.as_deref() == Some(name)
            && let Some(ns) = &m.namespace
        {
            q.add(ObjectKey { namespace: None, name: ns.clone() });
        }
    });
    queue
}

/// Whether objects may be created in the namespace (it exists and is not going away).
fn active(namespaces: &Informer<Namespace>, key: &ObjectKey) -> bool {
    namespaces.get(key).is_some_and(|ns| ns.metadata.deletion_timestamp.is_none())
}
