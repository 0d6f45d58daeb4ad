//! Routes to the pods of other nodes: for every other Node with a pod range and an InternalIP,
//! `ip route replace <podCIDR> via <InternalIP>`, so pods reach pods anywhere by their IPs
//! when nodes share a link (routes per node, as flannel's host-gw backend does). Routes are
//! tagged with their own routing protocol number, so they are told apart from the host's and
//! removed when their Node goes or moves.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;

use crate::kube::{Informers, Kube};

/// The `proto` of the routes this agent installs (unassigned in iproute2's rt_protos).
const ROUTE_PROTO: &str = "177";

/// Where each other node's pods are: pod range -> that node's address.
pub type Routes = BTreeMap<Ipv4Net, Ipv4Addr>;

fn internal_ip(node: &Node) -> Option<Ipv4Addr> {
    let addresses = node.status.as_ref()?.addresses.as_ref()?;
    addresses.iter().find(|a| a.type_ == "InternalIP")?.address.parse().ok()
}

/// The routes this node needs: one per other node whose range and address make sense from here.
pub fn desired(nodes: &[Arc<Node>], me: &str, my_address: &str, my_range: Ipv4Net) -> Routes {
    let mut out = Routes::new();
    for node in nodes {
        if node.metadata.name.as_deref() == Some(me) {
            continue;
        }
        let range = node.spec.as_ref().and_then(|s| s.pod_cidr.as_deref());
        let Some(range) = range.and_then(|r| r.parse::<Ipv4Net>().ok()).map(|r| r.trunc()) else {
            continue;
        };
        let Some(via) = internal_ip(node) else { continue };
        // Nodes on this very host (one address for all) reach each other's pods already.
        if via.is_loopback() || via.is_unspecified() || via.to_string() == my_address {
            continue;
        }
        if range.contains(&my_range.network()) || my_range.contains(&range.network()) {
            tracing::warn!(node = ?node.metadata.name, %range, "pod range overlaps this node's");
            continue;
        }
        out.insert(range, via);
    }
    out
}

fn ip_route(verb: &str, range: Ipv4Net, via: Ipv4Addr) -> Result<(), String> {
    let (range, via) = (range.to_string(), via.to_string());
    let args = ["route", verb, &range, "via", &via, "proto", ROUTE_PROTO];
    let out = std::process::Command::new("ip").args(args).output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// Keeps the routes as the Nodes ask, until the agent ends.
pub fn start(kube: Kube, me: String, my_address: String, my_range: Ipv4Net) {
    let informers = Informers::new(kube);
    let nodes = informers.get::<Node>();
    let changed = Arc::new(tokio::sync::Notify::new());
    let n = changed.clone();
    nodes.on_change(move |_| n.notify_one());
    let tasks = informers.start();
    tokio::spawn(async move {
        let _informer_tasks = tasks;
        let mut installed = Routes::new();
        // The last failure per route, so that one that cannot be installed is reported once.
        let mut failed: HashMap<(Ipv4Net, Ipv4Addr), String> = HashMap::new();
        loop {
            let want = desired(&nodes.list(), &me, &my_address, my_range);
            for (range, via) in &installed {
                if want.get(range) != Some(via)
                    && let Err(e) = ip_route("del", *range, *via)
                {
                    tracing::debug!(%range, %via, "removing the pod route: {e}");
                }
            }
            installed.retain(|r, v| want.get(r) == Some(v));
            for (range, via) in &want {
                if installed.get(range) == Some(via) {
                    continue;
                }
                match ip_route("replace", *range, *via) {
                    Ok(()) => {
                        tracing::info!(%range, %via, "routing another node's pods");
                        installed.insert(*range, *via);
                        failed.remove(&(*range, *via));
                    }
                    Err(e) => {
                        if failed.get(&(*range, *via)) != Some(&e) {
                            tracing::warn!(%range, %via, "cannot route another node's pods: {e}");
                            failed.insert((*range, *via), e);
                        }
                    }
                }
            }
            // Changes wake the loop; a slow resync retries what failed.
            let _ = tokio::time::timeout(Duration::from_secs(10), changed.notified()).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeAddress, NodeSpec, NodeStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn node(name: &str, range: Option<&str>, ip: &str) -> Arc<Node> {
        Arc::new(Node {
            metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
            spec: Some(NodeSpec { pod_cidr: range.map(Into::into), ..Default::default() }),
            status: Some(NodeStatus {
                addresses: Some(vec![NodeAddress {
                    type_: "InternalIP".into(),
                    address: ip.into(),
                }]),
                ..Default::default()
            }),
        })
    }

    #[test]
    fn routes_other_nodes_ranges_via_their_addresses() {
        let mine: Ipv4Net = "10.244.0.0/24".parse().expect("range");
        let nodes = [
            node("a", Some("10.244.0.0/24"), "192.168.7.1"),
            node("b", Some("10.244.1.0/24"), "192.168.7.2"),
            node("c", None, "192.168.7.3"),
            node("d", Some("10.244.2.0/24"), "127.0.0.1"),
            node("e", Some("10.244.3.0/24"), "not-an-ip"),
            node("f", Some("garbage"), "192.168.7.6"),
            node("g", Some("10.244.0.128/25"), "192.168.7.7"),
            node("h", Some("10.244.4.9/24"), "192.168.7.1"),
        ];
        let want = desired(&nodes, "a", "192.168.7.1", mine);
        let b: Ipv4Net = "10.244.1.0/24".parse().expect("range");
        assert_eq!(want, Routes::from([(b, Ipv4Addr::new(192, 168, 7, 2))]));
    }
}
