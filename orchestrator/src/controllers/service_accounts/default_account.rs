//! The `default` ServiceAccount of every namespace: pods that name no account run as it.

use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::super::Context;
use crate::api::ApiError;
use crate::kube::{Action, Controller, Informer, Kube, ObjectKey, Reconciler};

pub const NAME: &str = "default";

pub struct DefaultAccount {
    kube: Kube,
    namespaces: Arc<Informer<Namespace>>,
    accounts: Arc<Informer<ServiceAccount>>,
}

pub fn controller(ctx: &Context) -> Controller {
    let namespaces = ctx.informers.get::<Namespace>();
    let accounts = ctx.informers.get::<ServiceAccount>();
    let queue = super::queue_namespaces(&namespaces, &accounts, NAME);
    let reconciler = Arc::new(DefaultAccount {
        kube: ctx.kube.named("service-account-controller"),
        namespaces,
        accounts,
    });
    Controller { name: "serviceaccount", queue, reconciler, workers: 1 }
}

#[async_trait]
impl Reconciler for DefaultAccount {
    async fn sync(&self, key: &ObjectKey) -> Result<Action, ApiError> {
        let ns = &key.name;
        let account = ObjectKey { namespace: Some(ns.clone()), name: NAME.into() };
        if !super::active(&self.namespaces, key) || self.accounts.get(&account).is_some() {
            return Ok(Action::Done);
        }
        let sa = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(NAME.into()),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        match self.kube.create(&sa).await {
            Ok(stored) => self.accounts.observe(stored),
            // Made meanwhile, or the namespace is terminating: nothing to do.
            Err(e) if e.code == 409 || e.code == 403 || e.code == 404 => {}
            Err(e) => return Err(e),
        }
        Ok(Action::Done)
    }
}
