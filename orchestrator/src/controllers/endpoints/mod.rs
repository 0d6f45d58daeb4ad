//! Service endpoints: which pods back a Service (its selector, in its namespace), at which
//! address and ports. Two controllers publish them: [`legacy`] (core/v1 Endpoints, what
//! older clients read) and [`slices`] (discovery.k8s.io/v1 EndpointSlices).

pub mod legacy;
pub mod slices;

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::common::is_ready;
use crate::api::selector::LabelSelector;
use crate::kube::{Change, Informer, ObjectKey, WorkQueue};

/// One backend port: (name, port, protocol).
pub type Port = (Option<String>, i32, String);

/// A pod's address for a Service, with its ports resolved.
pub struct Backend {
    pub pod: Arc<Pod>,
    pub ip: String,
    pub ready: bool,
    pub terminating: bool,
    pub ports: Vec<Port>,
    /// The pod's own DNS name under the Service, when it asks for one.
    pub hostname: Option<String>,
}

/// A pod's `spec.hostname` when its `spec.subdomain` is the Service's name: then the
/// headless Service's DNS names the pod `<hostname>.<service>.<ns>.svc` (a StatefulSet's
/// pods under their set's Service, say).
fn hostname_under(svc: &Service, pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let hostname = spec.hostname.as_ref().filter(|h| !h.is_empty())?;
    (spec.subdomain.is_some() && spec.subdomain == svc.metadata.name).then(|| hostname.clone())
}

pub fn selector(svc: &Service) -> Option<LabelSelector> {
    let sel = svc.spec.as_ref()?.selector.as_ref().filter(|s| !s.is_empty())?;
    let text: Vec<String> = sel.iter().map(|(k, v)| format!("{k}={v}")).collect();
    LabelSelector::parse(&text.join(",")).ok()
}

/// The container port a service port targets on `pod` (by number or by name).
fn target_port(sp: &ServicePort, pod: &Pod) -> Option<i32> {
    match &sp.target_port {
        None => Some(sp.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => pod
            .spec
            .as_ref()?
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port),
    }
}

/// The pods behind `svc` that have an address; terminating ones only if `terminating`.
pub fn backends(svc: &Service, pods: &Informer<Pod>, terminating: bool) -> Vec<Backend> {
    let Some(sel) = selector(svc) else { return Vec::new() };
    let ns = svc.metadata.namespace.clone().unwrap_or_default();
    let ports = svc.spec.as_ref().and_then(|s| s.ports.clone()).unwrap_or_default();
    let mut out: Vec<Backend> = pods
        .select(&ns, &sel)
        .into_iter()
        .filter(|p| !matches!(super::common::phase(p), "Succeeded" | "Failed"))
        .filter(|p| terminating || p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| {
            let ip = p.status.as_ref()?.pod_ip.clone().filter(|ip| !ip.is_empty())?;
            let ports = ports
                .iter()
                .filter_map(|sp| {
                    let port = target_port(sp, &p)?;
                    Some((
                        sp.name.clone(),
                        port,
                        sp.protocol.clone().unwrap_or_else(|| "TCP".into()),
                    ))
                })
                .collect();
            Some(Backend {
                hostname: hostname_under(svc, &p),
                ready: is_ready(&p),
                terminating: p.metadata.deletion_timestamp.is_some(),
                ip,
                ports,
                pod: p,
            })
        })
        .collect();
    out.sort_by(|a, b| a.ip.cmp(&b.ip).then(a.pod.metadata.name.cmp(&b.pod.metadata.name)));
    out
}

/// Queues every Service in the pod's namespace that selects it (before or after the change).
pub fn enqueue_services(
    services: Arc<Informer<Service>>,
    queue: Arc<WorkQueue<ObjectKey>>,
) -> impl Fn(&Change<Pod>) + Send + Sync + 'static {
    move |c| {
        let mut label_sets = vec![c.object().metadata.labels.clone().unwrap_or_default()];
        if let Change::Updated { old, .. } = c {
            label_sets.push(old.metadata.labels.clone().unwrap_or_default());
        }
        let ns = c.object().metadata.namespace.clone().unwrap_or_default();
        for svc in services.list_in(&ns) {
            if let Some(sel) = selector(&svc)
                && label_sets.iter().any(|l| sel.matches(l))
            {
                queue.add(ObjectKey::of(&svc.metadata));
            }
        }
    }
}
