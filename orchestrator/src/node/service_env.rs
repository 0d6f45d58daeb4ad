//! The Service environment variables the kubelet gives every container (Docker links style):
//! `<NAME>_SERVICE_HOST`, `<NAME>_SERVICE_PORT[_<PORT NAME>]`, `<NAME>_PORT` and
//! `<NAME>_PORT_<port>_<PROTO>[_PROTO|_PORT|_ADDR]` for each Service with a cluster IP in the
//! pod's namespace (unless the pod sets `enableServiceLinks: false`), and always for the
//! `kubernetes` Service in `default`, which is how in-cluster clients find the API server.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, Service};

use super::error::NodeError;
use crate::kube::Kube;

/// The Service every pod learns about, wherever it runs.
const MASTER: (&str, &str) = ("default", "kubernetes");

/// The variables of one Service.
fn variables(svc: &Service, out: &mut BTreeMap<String, String>) {
    let Some(spec) = &svc.spec else { return };
    let Some(ip) = spec.cluster_ip.as_deref().filter(|ip| !ip.is_empty() && *ip != "None") else {
        return;
    };
    let name = svc.metadata.name.as_deref().unwrap_or_default().to_uppercase().replace('-', "_");
    let ports = spec.ports.as_deref().unwrap_or_default();
    let Some(first) = ports.first() else { return };
    out.insert(format!("{name}_SERVICE_HOST"), ip.to_owned());
    out.insert(format!("{name}_SERVICE_PORT"), first.port.to_string());
    let proto_of = |p: &k8s_openapi::api::core::v1::ServicePort| {
        p.protocol.as_deref().unwrap_or("TCP").to_owned()
    };
    out.insert(
        format!("{name}_PORT"),
        format!("{}://{ip}:{}", proto_of(first).to_lowercase(), first.port),
    );
    for p in ports {
        if let Some(port_name) = p.name.as_deref().filter(|n| !n.is_empty()) {
            let port_name = port_name.to_uppercase().replace('-', "_");
            out.insert(format!("{name}_SERVICE_PORT_{port_name}"), p.port.to_string());
        }
        let proto = proto_of(p);
        let prefix = format!("{name}_PORT_{}_{proto}", p.port);
        out.insert(prefix.clone(), format!("{}://{ip}:{}", proto.to_lowercase(), p.port));
        out.insert(format!("{prefix}_PROTO"), proto.to_lowercase());
        out.insert(format!("{prefix}_PORT"), p.port.to_string());
        out.insert(format!("{prefix}_ADDR"), ip.to_owned());
    }
}

/// The Service variables of `pod`'s containers.
pub async fn for_pod(kube: &Kube, pod: &Pod) -> Result<BTreeMap<String, String>, NodeError> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let links = pod.spec.as_ref().and_then(|s| s.enable_service_links).unwrap_or(true);
    let failed = |e| NodeError::env(format!("listing services: {e}"));
    let mut out = BTreeMap::new();
    if links {
        let services = kube.list::<Service>(Some(ns)).await.map_err(failed)?;
        let master = |s: &&Service| (ns, s.metadata.name.as_deref()) == (MASTER.0, Some(MASTER.1));
        for svc in services.iter().filter(|s| !master(s)) {
            variables(svc, &mut out);
        }
    }
    if let Some(master) = kube.get::<Service>(Some(MASTER.0), MASTER.1).await.map_err(failed)? {
        variables(&master, &mut out);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_link_variables() {
        let svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "my-db"},
            "spec": {"clusterIP": "10.96.0.9", "ports": [
                {"name": "sql", "port": 5432, "protocol": "TCP"},
                {"port": 53, "protocol": "UDP"},
            ]},
        }))
        .unwrap();
        let mut out = BTreeMap::new();
        variables(&svc, &mut out);
        let want = [
            ("MY_DB_SERVICE_HOST", "10.96.0.9"),
            ("MY_DB_SERVICE_PORT", "5432"),
            ("MY_DB_SERVICE_PORT_SQL", "5432"),
            ("MY_DB_PORT", "tcp://10.96.0.9:5432"),
            ("MY_DB_PORT_5432_TCP", "tcp://10.96.0.9:5432"),
            ("MY_DB_PORT_5432_TCP_PROTO", "tcp"),
            ("MY_DB_PORT_5432_TCP_PORT", "5432"),
            ("MY_DB_PORT_5432_TCP_ADDR", "10.96.0.9"),
            ("MY_DB_PORT_53_UDP", "udp://10.96.0.9:53"),
            ("MY_DB_PORT_53_UDP_PROTO", "udp"),
            ("MY_DB_PORT_53_UDP_PORT", "53"),
            ("MY_DB_PORT_53_UDP_ADDR", "10.96.0.9"),
        ];
        assert_eq!(out, want.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        let headless: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "h"}, "spec": {"clusterIP": "None", "ports": [{"port": 80}]},
        }))
        .unwrap();
        let mut none = BTreeMap::new();
        variables(&headless, &mut none);
        assert!(none.is_empty());
    }
}
