//! The Endpoints controller: an Endpoints object named like each Service with a selector,
//! listing ready pods as `addresses` and the others as `notReadyAddresses`, grouped by the
//! ports they resolve to.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::super::Context;
use super::{Port, backends, enqueue_services};
use crate::api::ApiError;
use crate::api::request::DeleteOptions;
use crate::kube::{Action, Controller, Informer, Kube, ObjectKey, Reconciler, WorkQueue};

pub struct EndpointsController {
    kube: Kube,
    services: Arc<Informer<Service>>,
    pods: Arc<Informer<Pod>>,
    endpoints: Arc<Informer<Endpoints>>,
}

pub fn controller(ctx: &Context) -> Controller {
    let queue = WorkQueue::new();
    let services = ctx.informers.get::<Service>();
    let pods = ctx.informers.get::<Pod>();
    let endpoints = ctx.informers.get::<Endpoints>();
    let q = queue.clone();
    services.on_change(move |c| q.add(ObjectKey::of(&c.object().metadata)));
    pods.on_change(enqueue_services(services.clone(), queue.clone()));
    let q = queue.clone();
    endpoints.on_change(move |c| q.add(ObjectKey::of(&c.object().metadata)));
    let reconciler = Arc::new(EndpointsController {
        kube: ctx.kube.named("endpoint-controller"),
        services,
        pods,
        endpoints,
    });
    Controller { name: "endpoints", queue, reconciler, workers: ctx.config.workers }
}

fn address(b: &super::Backend) -> EndpointAddress {
    let m = &b.pod.metadata;
    EndpointAddress {
        ip: b.ip.clone(),
        node_name: b.pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            name: m.name.clone(),
            namespace: m.namespace.clone(),
            uid: m.uid.clone(),
            ..Default::default()
        }),
        hostname: b.hostname.clone(),
    }
}

#[async_trait]
impl Reconciler for EndpointsController {
    async fn sync(&self, key: &ObjectKey) -> Result<Action, ApiError> {
        let existing = self.endpoints.get(key);
        let Some(svc) = self.services.get(key) else {
            // Endpoints of a deleted Service go with it.
            if let Some(ep) = existing {
                let opts = DeleteOptions {
                    precondition_uid: ep.metadata.uid.clone(),
                    ..Default::default()
                };
                match self.kube.delete::<Endpoints>(key.ns(), &key.name, opts).await {
                    Ok(_) => {}
                    Err(e) if e.code == 409 => {}
                    Err(e) => return Err(e),
                }
            }
            return Ok(Action::Done);
        };
        if super::selector(&svc).is_none() {
            return Ok(Action::Done);
        }
        let mut groups: BTreeMap<Vec<Port>, (Vec<EndpointAddress>, Vec<EndpointAddress>)> =
            BTreeMap::new();
        for b in backends(&svc, &self.pods, false) {
            if b.ports.is_empty()
                && svc.spec.as_ref().and_then(|s| s.ports.as_ref()).is_some_and(|p| !p.is_empty())
            {
                continue;
            }
            let g = groups.entry(b.ports.clone()).or_default();
            if b.ready { g.0.push(address(&b)) } else { g.1.push(address(&b)) }
        }
        let subsets: Vec<EndpointSubset> = groups
            .into_iter()
            .map(|(ports, (ready, not_ready))| EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: Some(
                    ports
                        .into_iter()
                        .map(|(name, port, protocol)| EndpointPort {
                            name,
                            port,
                            protocol: Some(protocol),
                            app_protocol: None,
                        })
                        .collect(),
                ),
            })
            .collect();
        let subsets = (!subsets.is_empty()).then_some(subsets);
        match existing {
            Some(ep) if ep.subsets == subsets => Ok(Action::Done),
            Some(ep) => {
                let mut new = (*ep).clone();
                new.subsets = subsets;
                let stored = self.kube.update(&new).await?;
                self.endpoints.observe(stored);
                Ok(Action::Done)
            }
            None => {
                let ep = Endpoints {
                    metadata: ObjectMeta {
                        name: Some(key.name.clone()),
                        namespace: key.namespace.clone(),
                        labels: svc.metadata.labels.clone(),
                        ..Default::default()
                    },
                    subsets,
                };
                match self.kube.create(&ep).await {
                    Ok(stored) => self.endpoints.observe(stored),
                    Err(e) if e.code == 409 => {}
                    Err(e) => return Err(e),
                }
                Ok(Action::Done)
            }
        }
    }
}
