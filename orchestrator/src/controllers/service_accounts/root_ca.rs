//! The `kube-root-ca.crt` ConfigMap of every namespace: the cluster CA (`ca.crt`), which
//! pods' projected service account volumes carry so in-cluster clients can verify the API
//! server. Kept equal to the CA this manager was given.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::super::Context;
use crate::api::ApiError;
use crate::kube::{Action, Controller, Informer, Kube, ObjectKey, Reconciler};

pub const NAME: &str = "kube-root-ca.crt";
pub const KEY: &str = "ca.crt";

pub struct RootCaPublisher {
    kube: Kube,
    namespaces: Arc<Informer<Namespace>>,
    maps: Arc<Informer<ConfigMap>>,
    ca_pem: Option<String>,
}

pub fn controller(ctx: &Context) -> Controller {
    let namespaces = ctx.informers.get::<Namespace>();
    let maps = ctx.informers.get::<ConfigMap>();
    let queue = super::queue_namespaces(&namespaces, &maps, NAME);
    let reconciler = Arc::new(RootCaPublisher {
        kube: ctx.kube.named("root-ca-cert-publisher"),
        namespaces,
        maps,
        ca_pem: ctx.config.root_ca.clone(),
    });
    Controller { name: "root-ca-cert-publisher", queue, reconciler, workers: 1 }
}

#[async_trait]
impl Reconciler for RootCaPublisher {
    async fn sync(&self, key: &ObjectKey) -> Result<Action, ApiError> {
        let Some(ca) = &self.ca_pem else { return Ok(Action::Done) };
        if !super::active(&self.namespaces, key) {
            return Ok(Action::Done);
        }
        let ns = &key.name;
        let data = BTreeMap::from([(KEY.to_owned(), ca.clone())]);
        let map_key = ObjectKey { namespace: Some(ns.clone()), name: NAME.into() };
        let result = match self.maps.get(&map_key) {
            Some(m) if m.data.as_ref() == Some(&data) => return Ok(Action::Done),
            Some(m) => {
                let mut fixed = (*m).clone();
                fixed.data = Some(data);
                fixed.binary_data = None;
                self.kube.update(&fixed).await
            }
            None => {
                let map = ConfigMap {
                    metadata: ObjectMeta {
                        name: Some(NAME.into()),
                        namespace: Some(ns.clone()),
                        ..Default::default()
                    },
                    data: Some(data),
                    ..Default::default()
                };
                self.kube.create(&map).await
            }
        };
        match result {
            Ok(stored) => self.maps.observe(stored),
            // A concurrent change shows up in the informer and queues the namespace again;
            // a terminating or vanished namespace needs nothing.
            Err(e) if e.code == 409 || e.code == 403 || e.code == 404 => {}
            Err(e) => return Err(e),
        }
        Ok(Action::Done)
    }
}
