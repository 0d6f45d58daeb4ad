//! What the Services and EndpointSlices in the API ask of this node's data path, as plain data:
//! one [`ServicePort`] per (Service, port) with its ready IPv4 endpoints. A pure function of
//! its input; anything it cannot use (IPv6, SCTP, ports out of range, missing fields) is left
//! out rather than guessed at.

use std::collections::{BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddrV4};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};

/// The label that ties an EndpointSlice to its Service.
const SERVICE_NAME: &str = "kubernetes.io/service-name";
/// kube-proxy's default `sessionAffinityConfig.clientIP.timeoutSeconds` (three hours), and
/// the API's upper bound for it (one day).
const DEFAULT_AFFINITY_SECONDS: u32 = 10_800;
const MAX_AFFINITY_SECONDS: u32 = 86_400;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// The name nft uses for it.
    pub fn nft(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }

    /// A Kubernetes protocol name (absent means TCP); None for what the data path lacks (SCTP).
    fn parse(p: Option<&str>) -> Option<Protocol> {
        match p.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            _ => None,
        }
    }
}

/// One port of one Service, as the data path implements it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServicePort {
    /// `namespace/name/port-name/protocol`: stable across updates, unique per node.
    pub id: String,
    pub cluster_ip: Ipv4Addr,
    pub port: u16,
    pub protocol: Protocol,
    pub node_port: Option<u16>,
    /// `sessionAffinity: ClientIP`: how long a client sticks to its endpoint, in seconds.
    pub affinity_seconds: Option<u32>,
    /// Ready endpoints, sorted and without duplicates.
    pub endpoints: Vec<SocketAddrV4>,
}

fn port16(p: i32) -> Option<u16> {
    u16::try_from(p).ok().filter(|p| *p != 0)
}

/// Whether an endpoint may take new connections: ready, where an absent condition means ready
/// (the EndpointSlice API says so).
pub fn is_ready(e: &Endpoint) -> bool {
    e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true)
}

/// The slices of each Service, by (namespace, service name).
pub fn slices_by_service<'a>(
    slices: &[&'a EndpointSlice],
) -> HashMap<(String, String), Vec<&'a EndpointSlice>> {
    let mut out: HashMap<_, Vec<_>> = HashMap::new();
    for s in slices {
        let labels = s.metadata.labels.as_ref();
        let Some(svc) = labels.and_then(|l| l.get(SERVICE_NAME)) else { continue };
        let ns = s.metadata.namespace.clone().unwrap_or_default();
        out.entry((ns, svc.clone())).or_default().push(*s);
    }
    out
}

/// The ready endpoints of one Service port: every ready IPv4 address of a slice that lists a
/// port of the same name and protocol, at that slice's port number.
fn endpoints_of(slices: &[&EndpointSlice], name: &str, protocol: Protocol) -> Vec<SocketAddrV4> {
    let mut out = BTreeSet::new();
    for slice in slices.iter().filter(|s| s.address_type == "IPv4") {
        let same = |p: &&k8s_openapi::api::discovery::v1::EndpointPort| {
            p.name.as_deref().unwrap_or("") == name
                && Protocol::parse(p.protocol.as_deref()) == Some(protocol)
        };
        let Some(port) =
            slice.ports.iter().flatten().filter(same).find_map(|p| p.port.and_then(port16))
        else {
            continue;
        };
        for e in slice.endpoints.iter().filter(|e| is_ready(e)) {
            // Every address of one endpoint is the same pod: the first is the one to use.
            if let Some(ip) = e.addresses.first().and_then(|a| a.parse::<Ipv4Addr>().ok()) {
                out.insert(SocketAddrV4::new(ip, port));
            }
        }
    }
    out.into_iter().collect()
}

/// The ClientIP affinity timeout of a Service, if it asks for affinity.
fn affinity(s: &Service) -> Option<u32> {
    let spec = s.spec.as_ref()?;
    if spec.session_affinity.as_deref() != Some("ClientIP") {
        return None;
    }
    let timeout = spec
        .session_affinity_config
        .as_ref()
        .and_then(|c| c.client_ip.as_ref())
        .and_then(|c| c.timeout_seconds)
        .and_then(|t| u32::try_from(t).ok())
        .unwrap_or(DEFAULT_AFFINITY_SECONDS);
    Some(timeout.clamp(1, MAX_AFFINITY_SECONDS))
}

/// Every Service port this node implements, sorted by id.
pub fn service_ports(services: &[&Service], slices: &[&EndpointSlice]) -> Vec<ServicePort> {
    let by_service = slices_by_service(slices);
    let mut out = Vec::new();
    for s in services {
        let Some(spec) = s.spec.as_ref() else { continue };
        if spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        // Headless ("None"), unset and IPv6 cluster IPs have nothing to translate here.
        let Some(cluster_ip) = spec.cluster_ip.as_deref().and_then(|ip| ip.parse().ok()) else {
            continue;
        };
        let ns = s.metadata.namespace.clone().unwrap_or_default();
        let name = s.metadata.name.clone().unwrap_or_default();
        let slices = by_service.get(&(ns.clone(), name.clone())).map(Vec::as_slice).unwrap_or(&[]);
        let exposed = matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"));
        for p in spec.ports.iter().flatten() {
            let Some(protocol) = Protocol::parse(p.protocol.as_deref()) else { continue };
            let Some(port) = port16(p.port) else { continue };
            let port_name = p.name.clone().unwrap_or_default();
            out.push(ServicePort {
                id: format!("{ns}/{name}/{port_name}/{}", protocol.nft()),
                cluster_ip,
                port,
                protocol,
                node_port: p.node_port.and_then(port16).filter(|_| exposed),
                affinity_seconds: affinity(s),
                endpoints: endpoints_of(slices, &port_name, protocol),
            });
        }
    }
    out.sort();
    out.dedup_by(|a, b| a.id == b.id);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse<T: serde::de::DeserializeOwned>(yaml: &str) -> Vec<T> {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn refs<T>(v: &[T]) -> Vec<&T> {
        v.iter().collect()
    }

    const SERVICES: &str = r#"
- metadata: {name: web, namespace: default}
  spec:
    type: NodePort
    clusterIP: 10.96.0.10
    sessionAffinity: ClientIP
    sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}
    ports: [{name: http, port: 80, nodePort: 30080}, {name: dns, port: 53, protocol: UDP}]
- metadata: {name: headless, namespace: default}
  spec: {clusterIP: None, ports: [{port: 80}]}
- metadata: {name: empty, namespace: default}
  spec: {clusterIP: 10.96.0.11, ports: [{port: 80, nodePort: 30081}]}
"#;

    const SLICES: &str = r#"
- metadata: {name: web-a, namespace: default, labels: {kubernetes.io/service-name: web}}
  addressType: IPv4
  ports: [{name: http, port: 8080, protocol: TCP}, {name: dns, port: 5353, protocol: UDP}]
  endpoints:
  - {addresses: [10.88.0.3], conditions: {ready: true}}
  - {addresses: [10.88.0.2]}
  - {addresses: [10.88.0.4], conditions: {ready: false}}
- metadata: {name: web-b, namespace: default, labels: {kubernetes.io/service-name: web}}
  addressType: IPv4
  ports: [{name: http, port: 8080}]
  endpoints: [{addresses: [10.88.0.2], conditions: {ready: true}}]
- metadata: {name: headless-a, namespace: default, labels: {kubernetes.io/service-name: headless}}
  addressType: IPv4
  ports: [{port: 80}]
  endpoints: [{addresses: [10.88.0.9]}, {addresses: [10.88.0.8], conditions: {ready: false}}]
"#;

    #[test]
    fn service_ports_take_ready_endpoints_from_slices() {
        let (services, slices) = (parse::<Service>(SERVICES), parse::<EndpointSlice>(SLICES));
        let ports = service_ports(&refs(&services), &refs(&slices));
        let ids: Vec<&str> = ports.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["default/empty//tcp", "default/web/dns/udp", "default/web/http/tcp"]);
        let http = &ports[2];
        assert_eq!(http.cluster_ip, Ipv4Addr::new(10, 96, 0, 10));
        assert_eq!((http.port, http.node_port, http.affinity_seconds), (80, Some(30080), Some(60)));
        let want: Vec<SocketAddrV4> =
            vec!["10.88.0.2:8080".parse().unwrap(), "10.88.0.3:8080".parse().unwrap()];
        assert_eq!(http.endpoints, want, "ready only, merged over slices, sorted, once each");
        let dns = &ports[1];
        assert_eq!(dns.protocol, Protocol::Udp);
        assert_eq!(dns.endpoints.len(), 2);
        assert_eq!(dns.endpoints[0].port(), 5353);
        assert_eq!(dns.node_port, None, "no nodePort given for it");
        let empty = &ports[0];
        assert!(empty.endpoints.is_empty());
        assert_eq!(empty.node_port, None, "a ClusterIP Service opens no node port");
    }

    #[test]
    fn odd_input_is_left_out_without_panicking() {
        let services: Vec<Service> = parse(
            r#"
- metadata: {}
- metadata: {name: nospec}
- metadata: {name: v6, namespace: x}
  spec: {clusterIP: "fd00::10", ports: [{port: 80}]}
- metadata: {name: ports, namespace: x}
  spec:
    type: NodePort
    clusterIP: 10.96.0.20
    sessionAffinity: ClientIP
    sessionAffinityConfig: {clientIP: {timeoutSeconds: -5}}
    ports:
    - {name: big, port: 70000, nodePort: 99999}
    - {name: neg, port: -1}
    - {name: zero, port: 0}
    - {name: sctp, port: 80, protocol: SCTP}
    - {name: ok, port: 81, nodePort: -3}
- metadata: {name: ext, namespace: x}
  spec: {type: ExternalName, externalName: example.com, clusterIP: 10.96.0.21, ports: [{port: 1}]}
- metadata: {name: bad-ip, namespace: x}
  spec: {clusterIP: "10.96.0.300", ports: [{port: 1}]}
"#,
        );
        let slices: Vec<EndpointSlice> = parse(
            r#"
- metadata: {name: s0}
  addressType: IPv4
  endpoints: [{addresses: [10.0.0.1]}]
- metadata: {name: s1, namespace: x, labels: {kubernetes.io/service-name: ports}}
  addressType: IPv4
  ports: [{name: ok, port: 70000}, {name: ok, port: 8081}, {name: neg}]
  endpoints:
  - {addresses: []}
  - {addresses: ["not an ip"]}
  - {addresses: ["fd00::1"]}
  - {addresses: [10.0.0.5]}
- metadata: {name: s2, namespace: x, labels: {kubernetes.io/service-name: v6}}
  addressType: IPv6
  ports: [{port: 80}]
  endpoints: [{addresses: ["fd00::2"]}]
"#,
        );
        let ports = service_ports(&refs(&services), &refs(&slices));
        assert_eq!(ports.len(), 1, "{ports:?}");
        let p = &ports[0];
        assert_eq!((p.id.as_str(), p.port, p.node_port), ("x/ports/ok/tcp", 81, None));
        assert_eq!(p.endpoints, vec!["10.0.0.5:8081".parse().unwrap()]);
        assert_eq!(p.affinity_seconds, Some(DEFAULT_AFFINITY_SECONDS), "a negative timeout");
    }
}
