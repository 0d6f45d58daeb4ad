//! The EndpointSlice controller: the backends of each Service with a selector as
//! EndpointSlices (at most 100 endpoints each, one group of slices per set of resolved ports),
//! owned by the Service. Terminating pods stay listed with `terminating: true` until gone.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::super::Context;
use super::super::common::{fnv32a, owner_ref, safe_encode};
use super::{Backend, Port, backends, enqueue_services};
use crate::api::ApiError;
use crate::api::request::DeleteOptions;
use crate::kube::{Action, Controller, Informer, Kube, ObjectKey, Reconciler, WorkQueue};

pub const SERVICE_NAME: &str = "kubernetes.io/service-name";
pub const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
pub const MANAGER: &str = "endpointslice-controller.k8s.io";
const MAX_ENDPOINTS: usize = 100;

pub struct SliceController {
    kube: Kube,
    services: Arc<Informer<Service>>,
    pods: Arc<Informer<Pod>>,
    slices: Arc<Informer<EndpointSlice>>,
    nodes: Arc<Informer<Node>>,
}

pub fn controller(ctx: &Context) -> Controller {
    let queue = WorkQueue::new();
    let services = ctx.informers.get::<Service>();
    let pods = ctx.informers.get::<Pod>();
    let slices = ctx.informers.get::<EndpointSlice>();
    let q = queue.clone();
    services.on_change(move |c| q.add(ObjectKey::of(&c.object().metadata)));
    pods.on_change(enqueue_services(services.clone(), queue.clone()));
    let q = queue.clone();
    slices.on_change(move |c| {
        let m = &c.object().metadata;
        let labels = m.labels.clone().unwrap_or_default();
        if labels.get(MANAGED_BY).map(String::as_str) == Some(MANAGER)
            && let Some(svc) = labels.get(SERVICE_NAME)
        {
            q.add(ObjectKey::new(m.namespace.as_deref(), svc));
        }
    });
    let reconciler = Arc::new(SliceController {
        kube: ctx.kube.named("endpointslice-controller"),
        services,
        pods,
        slices,
        nodes: ctx.informers.get::<Node>(),
    });
    Controller { name: "endpointslice", queue, reconciler, workers: ctx.config.workers }
}

impl SliceController {
    fn endpoint(&self, b: &Backend) -> Endpoint {
        let m = &b.pod.metadata;
        let node = b.pod.spec.as_ref().and_then(|s| s.node_name.clone());
        let zone = node
            .as_ref()
            .and_then(|n| self.nodes.get(&ObjectKey::new(None, n)))
            .and_then(|n| n.metadata.labels.as_ref()?.get("topology.kubernetes.io/zone").cloned());
        Endpoint {
            addresses: vec![b.ip.clone()],
            conditions: Some(EndpointConditions {
                ready: Some(b.ready && !b.terminating),
                serving: Some(b.ready),
                terminating: Some(b.terminating),
            }),
            node_name: node,
            hostname: b.hostname.clone(),
            zone,
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                name: m.name.clone(),
                namespace: m.namespace.clone(),
                uid: m.uid.clone(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

#[async_trait]
impl Reconciler for SliceController {
    async fn sync(&self, key: &ObjectKey) -> Result<Action, ApiError> {
        // A deleted Service's slices go with it (they are owned by it).
        let Some(svc) = self.services.get(key) else { return Ok(Action::Done) };
        if super::selector(&svc).is_none() {
            return Ok(Action::Done);
        }
        let ns = key.namespace.clone().unwrap_or_default();
        let mut groups: BTreeMap<Vec<Port>, Vec<Endpoint>> = BTreeMap::new();
        for b in backends(&svc, &self.pods, true) {
            groups.entry(b.ports.clone()).or_default().push(self.endpoint(&b));
        }
        if groups.is_empty() {
            groups.insert(Vec::new(), Vec::new());
        }
        let mut desired: BTreeMap<String, EndpointSlice> = BTreeMap::new();
        for (ports, endpoints) in groups {
            let chunks: Vec<Vec<Endpoint>> = if endpoints.is_empty() {
                vec![Vec::new()]
            } else {
                endpoints.chunks(MAX_ENDPOINTS).map(<[Endpoint]>::to_vec).collect()
            };
            for (i, chunk) in chunks.into_iter().enumerate() {
                let name = format!(
                    "{}-{}",
                    key.name,
                    safe_encode(fnv32a(format!("{ports:?}/{i}").as_bytes()))
                );
                let mut labels = svc.metadata.labels.clone().unwrap_or_default();
                labels.insert(SERVICE_NAME.into(), key.name.clone());
                labels.insert(MANAGED_BY.into(), MANAGER.into());
                let slice = EndpointSlice {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some(ns.clone()),
                        labels: Some(labels),
                        owner_references: Some(vec![owner_ref(&*svc)]),
                        ..Default::default()
                    },
                    address_type: "IPv4".into(),
                    endpoints: chunk,
                    ports: Some(
                        ports
                            .iter()
                            .map(|(n, p, proto)| EndpointPort {
                                name: n.clone(),
                                port: Some(*p),
                                protocol: Some(proto.clone()),
                                app_protocol: None,
                            })
                            .collect(),
                    ),
                };
                desired.insert(name, slice);
            }
        }
        let existing: Vec<Arc<EndpointSlice>> = self
            .slices
            .list_in(&ns)
            .into_iter()
            .filter(|s| {
                let l = s.metadata.labels.clone().unwrap_or_default();
                l.get(SERVICE_NAME) == Some(&key.name)
                    && l.get(MANAGED_BY).map(String::as_str) == Some(MANAGER)
            })
            .collect();
        let names: BTreeSet<String> =
            existing.iter().filter_map(|s| s.metadata.name.clone()).collect();
        for (name, want) in desired.iter() {
            match existing.iter().find(|s| s.metadata.name.as_ref() == Some(name)) {
                Some(have)
                    if have.endpoints == want.endpoints
                        && have.ports == want.ports
                        && have.metadata.labels == want.metadata.labels => {}
                Some(have) => {
                    let mut new = (**have).clone();
                    new.endpoints = want.endpoints.clone();
                    new.ports = want.ports.clone();
                    new.metadata.labels = want.metadata.labels.clone();
                    let stored = self.kube.update(&new).await?;
                    self.slices.observe(stored);
                }
                None => match self.kube.create(want).await {
                    Ok(stored) => self.slices.observe(stored),
                    Err(e) if e.code == 409 => {}
                    Err(e) => return Err(e),
                },
            }
        }
        for name in names.iter().filter(|n| !desired.contains_key(*n)) {
            match self.kube.delete::<EndpointSlice>(Some(&ns), name, DeleteOptions::default()).await
            {
                Ok(Some(gone)) => self.slices.observe_deleted(
                    &ObjectKey::new(Some(&ns), name),
                    crate::kube::key::revision(&gone.metadata),
                ),
                Ok(None) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Action::Done)
    }
}
