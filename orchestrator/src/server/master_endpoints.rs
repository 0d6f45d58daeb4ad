//! The `kubernetes` Service's backends: this API server at its advertised address, as the
//! Endpoints and EndpointSlice named `kubernetes` in `default` (Kubernetes' master endpoint
//! reconciler), with the Service's target port set to the port actually served. Pods reach the
//! API server through the Service's cluster IP (`KUBERNETES_SERVICE_HOST`) this way. Re-checked
//! periodically, so a deleted or edited object comes back.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Service,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::api::{Api, ApiError};
use crate::kube::{InProcess, Kube};

const NAMESPACE: &str = "default";
const NAME: &str = "kubernetes";
const PORT_NAME: &str = "https";
/// The label that names a slice's Service, and the manager of this slice (not the
/// EndpointSlice controller, which leaves selector-less Services alone).
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
const MANAGED_BY: (&str, &str) =
    ("endpointslice.kubernetes.io/managed-by", "endpointslicemirroring-controller.k8s.io");
const RECHECK: Duration = Duration::from_secs(10);

fn meta(labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(NAME.into()),
        namespace: Some(NAMESPACE.into()),
        labels: (!labels.is_empty()).then_some(labels),
        ..Default::default()
    }
}

async fn publish(kube: &Kube, ip: IpAddr, port: u16) -> Result<(), ApiError> {
    let port = i32::from(port);
    if let Some(mut svc) = kube.get::<Service>(Some(NAMESPACE), NAME).await? {
        let spec = svc.spec.get_or_insert_with(Default::default);
        let ports = spec.ports.get_or_insert_with(Vec::new);
        let mut changed = false;
        for p in ports.iter_mut().filter(|p| p.name.as_deref() == Some(PORT_NAME)) {
            if p.target_port != Some(IntOrString::Int(port)) {
                p.target_port = Some(IntOrString::Int(port));
                changed = true;
            }
        }
        if changed {
            kube.update(&svc).await?;
        }
    }
    let endpoints = Endpoints {
        metadata: meta(BTreeMap::new()),
        subsets: Some(vec![EndpointSubset {
            addresses: Some(vec![EndpointAddress { ip: ip.to_string(), ..Default::default() }]),
            ports: Some(vec![EndpointPort {
                name: Some(PORT_NAME.into()),
                port,
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }]),
    };
    let current = kube.get::<Endpoints>(Some(NAMESPACE), NAME).await?;
    if current.as_ref().map(|e| &e.subsets) != Some(&endpoints.subsets) {
        kube.create_or_replace(endpoints).await?;
    }
    let labels = BTreeMap::from([
        (SERVICE_NAME_LABEL.to_owned(), NAME.to_owned()),
        (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
    ]);
    let slice = EndpointSlice {
        metadata: meta(labels),
        address_type: if ip.is_ipv4() { "IPv4" } else { "IPv6" }.into(),
        endpoints: vec![Endpoint {
            addresses: vec![ip.to_string()],
            conditions: Some(EndpointConditions {
                ready: Some(true),
                serving: Some(true),
                terminating: Some(false),
            }),
            ..Default::default()
        }],
        ports: Some(vec![k8s_openapi::api::discovery::v1::EndpointPort {
            name: Some(PORT_NAME.into()),
            port: Some(port),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
    };
    let current = kube.get::<EndpointSlice>(Some(NAMESPACE), NAME).await?;
    let same = current.as_ref().is_some_and(|c| {
        c.endpoints == slice.endpoints
            && c.ports == slice.ports
            && c.metadata.labels == slice.metadata.labels
    });
    if !same {
        kube.create_or_replace(slice).await?;
    }
    Ok(())
}

/// Keeps the `kubernetes` Service's backends at `ip:port` while the server runs.
pub async fn run(api: Arc<Api>, ip: IpAddr, port: u16) {
    let kube = Kube::new(InProcess::new(api, "system:apiserver"), "kube-apiserver");
    loop {
        if let Err(e) = publish(&kube, ip, port).await {
            tracing::warn!("publishing the kubernetes Service's endpoints: {e}");
        }
        tokio::time::sleep(RECHECK).await;
    }
}
