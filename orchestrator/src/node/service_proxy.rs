//! Service cluster IPs on this node: every TCP port of every Service with a cluster IP gets a
//! listener on that IP (added to the loopback interface), which relays each connection to one
//! of the Service's ready endpoints, round-robin. A NodePort Service's node ports are served the
//! same way on every address of the node. `--proxy-mode userspace`: kept beside the nftables
//! data path ([`super::nft_proxy`]) so that benchmarks can compare the two.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::Shared;

type Backends = Arc<Mutex<Vec<SocketAddr>>>;

struct Listener {
    backends: Backends,
    task: tokio::task::JoinHandle<()>,
}

/// What the Services and Endpoints in the API ask of this node.
struct Desired {
    /// (cluster IP or node port) -> backends.
    listeners: HashMap<SocketAddr, Vec<SocketAddr>>,
}

fn key(meta: &ObjectMeta) -> (String, String) {
    (meta.namespace.clone().unwrap_or_default(), meta.name.clone().unwrap_or_default())
}

fn port16(p: i32) -> Option<u16> {
    u16::try_from(p).ok()
}

/// The backends of one Service port: the matching port of every ready endpoint address.
fn backends(ep: Option<&Endpoints>, port_name: &str) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for subset in ep.and_then(|e| e.subsets.as_ref()).into_iter().flatten() {
        let ports = subset.ports.as_deref().unwrap_or_default();
        let target = ports
            .iter()
            .find(|x| x.name.as_deref().unwrap_or("") == port_name)
            .or_else(|| (ports.len() == 1).then(|| &ports[0]));
        let Some(tport) = target.and_then(|t| port16(t.port)) else {
            continue;
        };
        for a in subset.addresses.iter().flatten() {
            if let Ok(ip) = a.ip.parse::<IpAddr>() {
                out.push(SocketAddr::new(ip, tport));
            }
        }
    }
    out
}

/// What `services` and their `endpoints` ask of this node.
fn desired_from(services: &[Service], endpoints: &[Endpoints]) -> Desired {
    let eps: HashMap<(String, String), &Endpoints> =
        endpoints.iter().map(|e| (key(&e.metadata), e)).collect();
    let mut out = HashMap::new();
    for s in services {
        let key = key(&s.metadata);
        let ep = eps.get(&key).copied();
        let spec = s.spec.as_ref();
        let cluster_ip: Option<IpAddr> =
            spec.and_then(|sp| sp.cluster_ip.as_deref()).and_then(|ip| ip.parse().ok());
        let Some(ip) = cluster_ip else {
            continue;
        };
        for p in spec.and_then(|sp| sp.ports.as_ref()).into_iter().flatten() {
            if p.protocol.as_deref().is_some_and(|pr| pr != "TCP") {
                continue;
            }
            let Some(port) = port16(p.port) else {
                continue;
            };
            let backends = backends(ep, p.name.as_deref().unwrap_or(""));
            if let Some(node_port) = p.node_port.and_then(port16) {
                let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
                out.insert(SocketAddr::new(any, node_port), backends.clone());
            }
            out.insert(SocketAddr::new(ip, port), backends);
        }
    }
    Desired { listeners: out }
}

async fn desired(shared: &Shared) -> Option<Desired> {
    let services = shared.kube.list::<Service>(None).await;
    let endpoints = shared.kube.list::<Endpoints>(None).await;
    match (services, endpoints) {
        (Ok(s), Ok(e)) => Some(desired_from(&s, &e)),
        (Err(e), _) | (_, Err(e)) => {
            tracing::debug!("reading Services and Endpoints: {e}");
            None
        }
    }
}

/// Cluster IPs this node added to its loopback interface; removed again when the proxy ends.
#[derive(Default)]
struct Addresses(std::collections::HashSet<std::net::IpAddr>);

impl Addresses {
    fn ensure(&mut self, ip: std::net::IpAddr) {
        if self.0.insert(ip) {
            let _ = std::process::Command::new("ip")
                .args(["addr", "add", &format!("{ip}/32"), "dev", "lo"])
                .output();
        }
    }
}

impl Drop for Addresses {
    fn drop(&mut self) {
        for ip in &self.0 {
            let _ = std::process::Command::new("ip")
                .args(["addr", "del", &format!("{ip}/32"), "dev", "lo"])
                .output();
        }
    }
}

fn listen(addr: SocketAddr, backends: Backends) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let std_listener = std::net::TcpListener::bind(addr)?;
    std_listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(std_listener)?;
    let next = Arc::new(AtomicUsize::new(0));
    Ok(tokio::spawn(async move {
        while let Ok((mut down, _)) = listener.accept().await {
            let list = backends.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if list.is_empty() {
                continue;
            }
            let start = next.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                // Try the backends in turn from the round-robin position.
                for i in 0..list.len() {
                    let b = list[(start + i) % list.len()];
                    if let Ok(Ok(mut up)) = tokio::time::timeout(
                        Duration::from_secs(2),
                        tokio::net::TcpStream::connect(b),
                    )
                    .await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                        return;
                    }
                }
            });
        }
    }))
}

/// Keeps the listeners in line with the API, re-reading it every second.
pub fn start(shared: Arc<Shared>) {
    tokio::spawn(async move {
        let mut listeners: HashMap<SocketAddr, Listener> = HashMap::new();
        let mut addresses = Addresses::default();
        loop {
            if let Some(Desired { listeners: want }) = desired(&shared).await {
                listeners.retain(|addr, l| {
                    let keep = want.contains_key(addr);
                    if !keep {
                        l.task.abort();
                    }
                    keep
                });
                for (addr, backends) in want {
                    match listeners.get(&addr) {
                        Some(l) => *l.backends.lock().unwrap_or_else(|e| e.into_inner()) = backends,
                        None => {
                            if !addr.ip().is_unspecified() {
                                addresses.ensure(addr.ip());
                            }
                            let b: Backends = Arc::new(Mutex::new(backends));
                            match listen(addr, b.clone()) {
                                Ok(task) => {
                                    listeners.insert(addr, Listener { backends: b, task });
                                }
                                Err(e) => tracing::warn!("service address {addr}: {e}"),
                            }
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_follow_services_and_their_ready_endpoints() {
        let services: Vec<Service> = serde_yaml::from_str(
            r#"
- metadata: {name: web, namespace: default}
  spec:
    clusterIP: 10.96.0.10
    ports: [{name: http, port: 80, nodePort: 30080}, {name: dns, port: 53, protocol: UDP}]
- metadata: {name: headless, namespace: default}
  spec: {clusterIP: None, ports: [{port: 80}]}
"#,
        )
        .unwrap();
        let endpoints: Vec<Endpoints> = serde_yaml::from_str(
            r#"
- metadata: {name: web, namespace: default}
  subsets: [{addresses: [{ip: 10.88.0.2}, {ip: 10.88.0.3}], ports: [{name: http, port: 8080}]}]
- metadata: {name: headless, namespace: default}
  subsets: [{addresses: [{ip: 10.88.0.9}], ports: [{port: 80}]}]
"#,
        )
        .unwrap();
        let d = desired_from(&services, &endpoints);
        let web: SocketAddr = "10.96.0.10:80".parse().unwrap();
        let want: Vec<SocketAddr> =
            vec!["10.88.0.2:8080".parse().unwrap(), "10.88.0.3:8080".parse().unwrap()];
        assert_eq!(d.listeners.get(&web), Some(&want));
        assert_eq!(d.listeners.get(&"0.0.0.0:30080".parse().unwrap()), Some(&want));
        assert_eq!(d.listeners.len(), 2, "UDP ports and headless Services get no listener");
    }
}
