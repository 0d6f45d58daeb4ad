//! Service cluster IPs on this node: every TCP port of every Service with a cluster IP gets a
//! listener on that IP (added to the loopback interface), which relays each connection to one
//! of the Service's ready endpoints, round-robin. A NodePort Service's node ports are served the
//! same way on every address of the node.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

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
    /// DNS names -> addresses.
    names: HashMap<String, Vec<std::net::Ipv4Addr>>,
}

fn ready_addresses(ep: Option<&&Value>) -> Vec<std::net::Ipv4Addr> {
    let subsets = ep.and_then(|e| e["subsets"].as_array()).into_iter().flatten();
    let mut out: Vec<std::net::Ipv4Addr> = subsets
        .flat_map(|s| s["addresses"].as_array().into_iter().flatten())
        .filter_map(|a| a["ip"].as_str()?.parse().ok())
        .collect();
    out.sort();
    out.dedup();
    out
}

async fn desired(shared: &Shared) -> Option<Desired> {
    let services =
        shared.api.get("/api/v1/services").await.ok().filter(|r| r.status == 200)?.json();
    let endpoints =
        shared.api.get("/api/v1/endpoints").await.ok().filter(|r| r.status == 200)?.json();
    let mut eps: HashMap<(String, String), &Value> = HashMap::new();
    for e in endpoints["items"].as_array().into_iter().flatten() {
        let ns = e["metadata"]["namespace"].as_str().unwrap_or("").to_string();
        let name = e["metadata"]["name"].as_str().unwrap_or("").to_string();
        eps.insert((ns, name), e);
    }
    let mut out = HashMap::new();
    let mut names = HashMap::new();
    for s in services["items"].as_array().into_iter().flatten() {
        let key = (
            s["metadata"]["namespace"].as_str().unwrap_or("").to_string(),
            s["metadata"]["name"].as_str().unwrap_or("").to_string(),
        );
        let ep = eps.get(&key);
        let cluster_ip = s["spec"]["clusterIP"].as_str().and_then(|ip| ip.parse().ok());
        let addresses = match cluster_ip {
            Some(std::net::IpAddr::V4(v4)) => vec![v4],
            _ => ready_addresses(ep),
        };
        names.insert(super::dns::service_name(&key.0, &key.1), addresses);
        let Some(ip) = cluster_ip else {
            continue;
        };
        for p in s["spec"]["ports"].as_array().into_iter().flatten() {
            if p["protocol"].as_str().is_some_and(|pr| pr != "TCP") {
                continue;
            }
            let Some(port) = p["port"].as_u64().and_then(|x| u16::try_from(x).ok()) else {
                continue;
            };
            let pname = p["name"].as_str().unwrap_or("");
            let mut backends = Vec::new();
            for subset in ep.and_then(|e| e["subsets"].as_array()).into_iter().flatten() {
                let target = subset["ports"].as_array().and_then(|ps| {
                    ps.iter()
                        .find(|x| x["name"].as_str().unwrap_or("") == pname)
                        .or_else(|| (ps.len() == 1).then(|| &ps[0]))
                });
                let Some(tport) =
                    target.and_then(|t| t["port"].as_u64()).and_then(|x| u16::try_from(x).ok())
                else {
                    continue;
                };
                for a in subset["addresses"].as_array().into_iter().flatten() {
                    if let Some(ip) = a["ip"].as_str().and_then(|i| i.parse().ok()) {
                        backends.push(SocketAddr::new(ip, tport));
                    }
                }
            }
            if let Some(node_port) = p["nodePort"].as_u64().and_then(|x| u16::try_from(x).ok()) {
                let any = std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
                out.insert(SocketAddr::new(any, node_port), backends.clone());
            }
            out.insert(SocketAddr::new(ip, port), backends);
        }
    }
    Some(Desired { listeners: out, names })
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
            if let Some(Desired { listeners: want, names }) = desired(&shared).await {
                shared.dns.replace(names);
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
