//! What the NetworkPolicies ask of this node, as plain data: for each of its pods that a policy
//! isolates, in each isolated direction, the union of the allowed (peer, port) pairs with every
//! selector resolved to addresses and every named port to numbers. A pure function of the
//! policies, the cluster's pods and its namespaces.
//!
//! Kubernetes semantics: a pod is isolated for ingress (egress) when any policy of its namespace
//! selects it and has that policy type; it then accepts only what some rule of those policies
//! allows. Named ports resolve against the destination: the isolated pod itself for ingress, the
//! peer pod for egress (so an egress named port matches pods only, never a bare address).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Namespace, Pod};

use super::spec::{PeerSpec, PolicySpec, PortSpec, Protocol, RuleSpec};
use crate::api::selector::LabelSelector;

/// The label every namespace carries with its own name (the API sets it; it is assumed when a
/// namespace is not known yet).
const NAMESPACE_NAME: &str = "kubernetes.io/metadata.name";

/// Where traffic may come from (ingress) or go to (egress).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peers {
    Any,
    /// These pod addresses and these blocks; both empty: nothing.
    Only {
        addrs: BTreeSet<Ipv4Addr>,
        blocks: Vec<Block>,
    },
}

/// Addresses in `net` but in none of `except` (normalized: no two overlap, all inside `net`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    pub net: Ipv4Net,
    pub except: Vec<Ipv4Net>,
}

/// Which destination ports: every port of every protocol (including ICMP), or these ranges per
/// protocol (sorted, merged; empty: nothing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ports {
    Any,
    Only(BTreeMap<Protocol, Vec<(u16, u16)>>),
}

/// One allowed (peers, ports) pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allow {
    pub peers: Peers,
    pub ports: Ports,
}

/// One isolated pod of this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRules {
    /// `namespace/name`, for logs.
    pub pod: String,
    pub ip: Ipv4Addr,
    /// Some: isolated for ingress, allowing only these (empty: nothing).
    pub ingress: Option<Vec<Allow>>,
    pub egress: Option<Vec<Allow>>,
}

/// A pod as policies see it.
struct PodView<'a> {
    namespace: &'a str,
    name: &'a str,
    node: &'a str,
    ip: Ipv4Addr,
    labels: BTreeMap<String, String>,
    /// (name, protocol) -> container ports.
    named_ports: Vec<(&'a str, Protocol, u16)>,
    deleting: bool,
}

fn view(p: &Pod) -> Option<PodView<'_>> {
    let spec = p.spec.as_ref()?;
    let status = p.status.as_ref()?;
    // Policies do not apply to the node's own network, and a finished pod's address may be
    // someone else's already.
    if spec.host_network == Some(true)
        || matches!(status.phase.as_deref(), Some("Succeeded" | "Failed"))
    {
        return None;
    }
    let ips = status.pod_ips.iter().flatten().map(|i| i.ip.as_str());
    let ip = ips.chain(status.pod_ip.as_deref()).find_map(|s| s.parse::<Ipv4Addr>().ok())?;
    let mut named_ports = Vec::new();
    for c in &spec.containers {
        for cp in c.ports.iter().flatten() {
            let (Some(name), Ok(port)) = (cp.name.as_deref(), u16::try_from(cp.container_port))
            else {
                continue;
            };
            let proto = cp.protocol.as_ref().map(|p| serde_json::Value::String(p.clone()));
            if let (Some(proto), true) = (Protocol::parse(proto.as_ref()), port != 0) {
                named_ports.push((name, proto, port));
            }
        }
    }
    Some(PodView {
        namespace: p.metadata.namespace.as_deref()?,
        name: p.metadata.name.as_deref()?,
        node: spec.node_name.as_deref().unwrap_or_default(),
        ip,
        labels: p.metadata.labels.clone().unwrap_or_default(),
        named_ports,
        deleting: p.metadata.deletion_timestamp.is_some(),
    })
}

/// The cluster as the rules need it.
struct Cluster<'a> {
    pods: Vec<PodView<'a>>,
    namespace_labels: HashMap<&'a str, BTreeMap<String, String>>,
}

impl<'a> Cluster<'a> {
    fn namespace_matches(&self, ns: &str, sel: &LabelSelector) -> bool {
        match self.namespace_labels.get(ns) {
            Some(labels) => sel.matches(labels),
            None => sel.matches(&BTreeMap::from([(NAMESPACE_NAME.to_owned(), ns.to_owned())])),
        }
    }

    /// The pods a peer entry of a policy in `policy_ns` selects (none for a block).
    fn selected(&self, peer: &PeerSpec, policy_ns: &str) -> Vec<&PodView<'a>> {
        let PeerSpec::Pods { namespaces, pods } = peer else { return Vec::new() };
        self.pods
            .iter()
            .filter(|p| match namespaces {
                None => p.namespace == policy_ns,
                Some(sel) => self.namespace_matches(p.namespace, sel),
            })
            .filter(|p| pods.matches(&p.labels))
            .collect()
    }

    /// The peers of a rule as addresses.
    fn peers(&self, rule: &RuleSpec, policy_ns: &str) -> Peers {
        let Some(list) = &rule.peers else { return Peers::Any };
        let mut addrs = BTreeSet::new();
        let mut blocks = Vec::new();
        for peer in list {
            match peer {
                PeerSpec::Pods { .. } => {
                    addrs.extend(self.selected(peer, policy_ns).iter().map(|p| p.ip));
                }
                PeerSpec::Block { net, except } => blocks.extend(block(*net, except)),
            }
        }
        Peers::Only { addrs, blocks }
    }

    /// The pods a rule's peers can reach or be reached from, for named egress ports: the
    /// selected pods and those whose address a block holds.
    fn peer_pods(&self, rule: &RuleSpec, policy_ns: &str) -> Vec<&PodView<'a>> {
        let Some(list) = &rule.peers else { return self.pods.iter().collect() };
        let mut out: Vec<&PodView<'a>> = Vec::new();
        for peer in list {
            match peer {
                PeerSpec::Pods { .. } => out.extend(self.selected(peer, policy_ns)),
                PeerSpec::Block { net, except } => {
                    out.extend(self.pods.iter().filter(|p| {
                        net.contains(&p.ip) && !except.iter().any(|e| e.contains(&p.ip))
                    }))
                }
            }
        }
        out
    }
}

/// A block with its exceptions normalized (nft refuses overlapping set elements); None when the
/// exceptions cover it whole.
fn block(net: Ipv4Net, except: &[Ipv4Net]) -> Option<Block> {
    let mut inside: Vec<Ipv4Net> = Vec::new();
    for e in except {
        if e.contains(&net) {
            return None;
        }
        // An exception merely overlapping the block can only be larger or disjoint (prefixes
        // nest or do not meet): larger was handled above, disjoint excludes nothing.
        if net.contains(e) {
            inside.push(*e);
        }
    }
    inside.sort_by_key(|n| (n.prefix_len(), n.network()));
    let mut kept: Vec<Ipv4Net> = Vec::new();
    for e in inside {
        if !kept.iter().any(|k| k.contains(&e)) {
            kept.push(e);
        }
    }
    kept.sort();
    Some(Block { net, except: kept })
}

/// Adds a port spec's range to `ports` (named ports are resolved by the caller).
fn add_range(ports: &mut BTreeMap<Protocol, Vec<(u16, u16)>>, proto: Protocol, r: (u16, u16)) {
    ports.entry(proto).or_default().push(r);
}

/// Sorts and merges overlapping or adjacent ranges (nft refuses overlapping set elements).
fn merged(mut ports: BTreeMap<Protocol, Vec<(u16, u16)>>) -> Ports {
    for ranges in ports.values_mut() {
        ranges.sort_unstable();
        let mut out: Vec<(u16, u16)> = Vec::new();
        for &(a, b) in ranges.iter() {
            match out.last_mut() {
                Some(last) if u32::from(a) <= u32::from(last.1) + 1 => last.1 = last.1.max(b),
                _ => out.push((a, b)),
            }
        }
        *ranges = out;
    }
    ports.retain(|_, r| !r.is_empty());
    Ports::Only(ports)
}

/// The ports of a rule, with named ports looked up on `dest`.
fn ports_on(rule: &RuleSpec, dest: Option<&PodView<'_>>) -> Ports {
    let Some(list) = &rule.ports else { return Ports::Any };
    let mut ports = BTreeMap::new();
    for p in list {
        match p {
            PortSpec::Range { protocol, first, last } => {
                add_range(&mut ports, *protocol, (*first, *last))
            }
            PortSpec::Named { protocol, name } => {
                for (n, proto, port) in dest.map(|d| d.named_ports.as_slice()).unwrap_or(&[]) {
                    if n == name && proto == protocol {
                        add_range(&mut ports, *proto, (*port, *port));
                    }
                }
            }
        }
    }
    merged(ports)
}

fn matches_nothing(a: &Allow) -> bool {
    let no_peers =
        matches!(&a.peers, Peers::Only { addrs, blocks } if addrs.is_empty() && blocks.is_empty());
    let no_ports = matches!(&a.ports, Ports::Only(p) if p.is_empty());
    no_peers || no_ports
}

/// The allows of one ingress rule for `pod` (named ports are the pod's own).
fn ingress_allows(
    cluster: &Cluster<'_>,
    rule: &RuleSpec,
    ns: &str,
    pod: &PodView<'_>,
) -> Vec<Allow> {
    vec![Allow { peers: cluster.peers(rule, ns), ports: ports_on(rule, Some(pod)) }]
}

/// The allows of one egress rule: its numeric ports towards its peers, and each named port
/// towards each peer pod that has it.
fn egress_allows(cluster: &Cluster<'_>, rule: &RuleSpec, ns: &str) -> Vec<Allow> {
    let only = |named: bool| RuleSpec {
        peers: rule.peers.clone(),
        ports: rule.ports.as_ref().map(|l| {
            l.iter().filter(|p| matches!(p, PortSpec::Named { .. }) == named).cloned().collect()
        }),
    };
    let mut out =
        vec![Allow { peers: cluster.peers(rule, ns), ports: ports_on(&only(false), None) }];
    let named = only(true);
    if named.ports.as_ref().is_some_and(|l| !l.is_empty()) {
        for dest in cluster.peer_pods(rule, ns) {
            let ports = ports_on(&named, Some(dest));
            let peers = Peers::Only { addrs: BTreeSet::from([dest.ip]), blocks: Vec::new() };
            out.push(Allow { peers, ports });
        }
    }
    out
}

/// The rules of every pod on `node` that some policy isolates, ordered by address.
pub fn pod_rules(
    node: &str,
    policies: &[PolicySpec],
    pods: &[&Pod],
    namespaces: &[&Namespace],
) -> Vec<PodRules> {
    let mut namespace_labels = HashMap::new();
    for ns in namespaces {
        let Some(name) = ns.metadata.name.as_deref() else { continue };
        let mut labels = ns.metadata.labels.clone().unwrap_or_default();
        labels.entry(NAMESPACE_NAME.to_owned()).or_insert_with(|| name.to_owned());
        namespace_labels.insert(name, labels);
    }
    let cluster = Cluster { pods: pods.iter().filter_map(|p| view(p)).collect(), namespace_labels };

    // One address, one set of rules: a pod being deleted yields to its successor; live pods
    // claiming one address (a broken state) that policies treat differently are shut off
    // rather than guessed at.
    let mut by_ip: BTreeMap<Ipv4Addr, Vec<&PodView<'_>>> = BTreeMap::new();
    for p in cluster.pods.iter().filter(|p| p.node == node && !node.is_empty()) {
        by_ip.entry(p.ip).or_default().push(p);
    }
    let mut out = Vec::new();
    for (ip, mut claimants) in by_ip {
        if claimants.iter().any(|p| !p.deleting) {
            claimants.retain(|p| !p.deleting);
        }
        let names: Vec<String> =
            claimants.iter().map(|p| format!("{}/{}", p.namespace, p.name)).collect();
        let mut each = claimants.iter().map(|p| isolation(&cluster, policies, p));
        let Some(first) = each.next() else { continue };
        let (ingress, egress) =
            if each.all(|o| o == first) { first } else { (Some(Vec::new()), Some(Vec::new())) };
        if ingress.is_some() || egress.is_some() {
            out.push(PodRules { pod: names.join(","), ip, ingress, egress });
        }
    }
    out
}

type Isolation = (Option<Vec<Allow>>, Option<Vec<Allow>>);

/// What the policies of its namespace make of one pod: per direction, None when not isolated.
fn isolation(cluster: &Cluster<'_>, policies: &[PolicySpec], pod: &PodView<'_>) -> Isolation {
    let mut ingress: Option<Vec<Allow>> = None;
    let mut egress: Option<Vec<Allow>> = None;
    for policy in policies.iter().filter(|p| p.namespace == pod.namespace) {
        let selects = match &policy.pod_selector {
            Some(sel) => sel.matches(&pod.labels),
            None => true,
        };
        if !selects {
            continue;
        }
        // An unreadable selector isolates without allowing.
        let readable = policy.pod_selector.is_some();
        if let Some(rules) = &policy.ingress {
            let allows = ingress.get_or_insert_with(Vec::new);
            for rule in rules.iter().filter(|_| readable) {
                allows.extend(ingress_allows(cluster, rule, &policy.namespace, pod));
            }
        }
        if let Some(rules) = &policy.egress {
            let allows = egress.get_or_insert_with(Vec::new);
            for rule in rules.iter().filter(|_| readable) {
                allows.extend(egress_allows(cluster, rule, &policy.namespace));
            }
        }
    }
    let keep = |v: Option<Vec<Allow>>| {
        v.map(|mut v| {
            v.retain(|a| !matches_nothing(a));
            v.dedup();
            v
        })
    };
    (keep(ingress), keep(egress))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::spec;
    use super::*;

    fn pod(ns: &str, name: &str, node: &str, ip: &str, labels: Value, ports: Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"namespace": ns, "name": name, "labels": labels},
            "spec": {"nodeName": node, "containers": [{"name": "c", "ports": ports}]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}
        }))
        .unwrap()
    }

    fn namespace(name: &str, labels: Value) -> Namespace {
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap()
    }

    fn policy(ns: &str, spec: Value) -> PolicySpec {
        spec::parse(ns, "p", &spec)
    }

    /// Tenant a's web pod on this node with named ports, a client in a and one in b, a pod of
    /// a on another node.
    fn cluster() -> (Vec<Pod>, Vec<Namespace>) {
        let web_ports = json!([
            {"name": "http", "containerPort": 8080},
            {"name": "dns", "containerPort": 5353, "protocol": "UDP"}
        ]);
        let pods = vec![
            pod("a", "web", "n1", "10.88.0.2", json!({"app": "web"}), web_ports),
            pod("a", "client", "n1", "10.88.0.3", json!({"app": "client"}), json!([])),
            pod("b", "client", "n1", "10.88.0.4", json!({"app": "client"}), json!([])),
            pod(
                "a",
                "far",
                "n2",
                "10.88.1.5",
                json!({"app": "web"}),
                json!([
                    {"name": "http", "containerPort": 9090}
                ]),
            ),
        ];
        let nss =
            vec![namespace("a", json!({"tenant": "a"})), namespace("b", json!({"tenant": "b"}))];
        (pods, nss)
    }

    fn rules(policies: &[PolicySpec]) -> Vec<PodRules> {
        let (pods, nss) = cluster();
        let pods: Vec<&Pod> = pods.iter().collect();
        let nss: Vec<&Namespace> = nss.iter().collect();
        pod_rules("n1", policies, &pods, &nss)
    }

    fn of<'a>(r: &'a [PodRules], pod: &str) -> &'a PodRules {
        r.iter().find(|p| p.pod == pod).unwrap_or_else(|| panic!("{pod} not isolated: {r:?}"))
    }

    fn addrs(ips: &[&str]) -> Peers {
        Peers::Only { addrs: ips.iter().map(|i| i.parse().unwrap()).collect(), blocks: vec![] }
    }

    fn tcp(ranges: &[(u16, u16)]) -> Ports {
        Ports::Only(BTreeMap::from([(Protocol::Tcp, ranges.to_vec())]))
    }

    #[test]
    fn default_deny_isolates_only_the_selected_pods_of_its_namespace_on_this_node() {
        let r = rules(&[policy("a", json!({"podSelector": {}}))]);
        let isolated: Vec<&str> = r.iter().map(|p| p.pod.as_str()).collect();
        assert_eq!(isolated, ["a/web", "a/client"], "not b's pod, not the other node's");
        assert_eq!(of(&r, "a/web").ingress, Some(vec![]));
        assert_eq!(of(&r, "a/web").egress, None);
        assert!(rules(&[]).is_empty());
    }

    #[test]
    fn same_namespace_named_port_ingress() {
        let r = rules(&[policy(
            "a",
            json!({
                "podSelector": {"matchLabels": {"app": "web"}},
                "ingress": [{"from": [{"podSelector": {}}], "ports": [{"port": "http"}, {"port": "nope"}]}]
            }),
        )]);
        assert_eq!(r.len(), 1);
        let web = of(&r, "a/web");
        // Pods of a on any node; the named port is web's own 8080.
        let want = Allow {
            peers: addrs(&["10.88.0.2", "10.88.0.3", "10.88.1.5"]),
            ports: tcp(&[(8080, 8080)]),
        };
        assert_eq!(web.ingress, Some(vec![want]));
    }

    #[test]
    fn a_rule_whose_ports_all_fail_to_resolve_allows_nothing_not_everything() {
        let r = rules(&[policy(
            "a",
            json!({
                "podSelector": {"matchLabels": {"app": "web"}},
                "ingress": [{"ports": [{"port": "missing"}, {"port": 5, "endPort": 1}]}]
            }),
        )]);
        assert_eq!(of(&r, "a/web").ingress, Some(vec![]));
        let r = rules(&[policy(
            "a",
            json!({
                "podSelector": {"matchLabels": {"app": "web"}},
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "ghost"}}}]}]
            }),
        )]);
        assert_eq!(of(&r, "a/web").ingress, Some(vec![]), "a selector matching no pod");
    }

    #[test]
    fn namespace_selectors_alone_and_combined() {
        let r = rules(&[policy(
            "a",
            json!({
                "podSelector": {"matchLabels": {"app": "web"}},
                "ingress": [
                    {"from": [{"namespaceSelector": {"matchLabels": {"tenant": "b"}}}]},
                    {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "a"}},
                               "podSelector": {"matchLabels": {"app": "client"}}}],
                     "ports": [{"port": 1000, "endPort": 2000}, {"port": 1500, "endPort": 2500}, {"port": 2501}]}
                ]
            }),
        )]);
        let web = of(&r, "a/web");
        assert_eq!(
            web.ingress,
            Some(vec![
                Allow { peers: addrs(&["10.88.0.4"]), ports: Ports::Any },
                Allow { peers: addrs(&["10.88.0.3"]), ports: tcp(&[(1000, 2501)]) },
            ])
        );
        // A namespace the informer has not seen still has its name label.
        let (pods, _) = cluster();
        let pods: Vec<&Pod> = pods.iter().collect();
        let p = policy(
            "a",
            json!({"ingress": [{"from": [{"namespaceSelector":
            {"matchLabels": {"kubernetes.io/metadata.name": "b"}}}]}]}),
        );
        let r = pod_rules("n1", &[p], &pods, &[]);
        assert_eq!(of(&r, "a/web").ingress.as_ref().unwrap()[0].peers, addrs(&["10.88.0.4"]));
    }

    #[test]
    fn ip_blocks_keep_their_exceptions_normalized() {
        let r = rules(&[policy(
            "a",
            json!({
                "podSelector": {"matchLabels": {"app": "web"}},
                "ingress": [{"from": [
                    {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.88.0.0/16", "10.88.1.0/24", "192.168.0.0/16"]}},
                    {"ipBlock": {"cidr": "172.16.0.0/12", "except": ["172.0.0.0/8"]}},
                ]}]
            }),
        )]);
        let want = Peers::Only {
            addrs: BTreeSet::new(),
            blocks: vec![Block {
                net: "10.0.0.0/8".parse().unwrap(),
                except: vec!["10.88.0.0/16".parse().unwrap()],
            }],
        };
        assert_eq!(of(&r, "a/web").ingress.as_ref().unwrap()[0].peers, want);
    }

    #[test]
    fn egress_named_ports_resolve_on_each_destination_pod() {
        let r = rules(&[policy(
            "a",
            json!({
                "podSelector": {"matchLabels": {"app": "client"}},
                "policyTypes": ["Egress"],
                "egress": [
                    {"to": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"port": "http"}, {"port": 53, "protocol": "UDP"}]},
                    {"to": [{"ipBlock": {"cidr": "10.88.1.0/24"}}], "ports": [{"port": "http"}]},
                ]
            }),
        )]);
        let client = of(&r, "a/client");
        assert_eq!(client.ingress, None);
        let udp53 = Ports::Only(BTreeMap::from([(Protocol::Udp, vec![(53, 53)])]));
        assert_eq!(
            client.egress,
            Some(vec![
                Allow { peers: addrs(&["10.88.0.2", "10.88.1.5"]), ports: udp53 },
                Allow { peers: addrs(&["10.88.0.2"]), ports: tcp(&[(8080, 8080)]) },
                Allow { peers: addrs(&["10.88.1.5"]), ports: tcp(&[(9090, 9090)]) },
            ]),
            "the block's rule reaches the far pod's http only; its bare addresses get no port"
        );
    }

    #[test]
    fn policies_add_up_and_unreadable_ones_only_close() {
        let open =
            policy("a", json!({"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{}]}));
        let broken = policy(
            "a",
            json!({
                "podSelector": {"matchExpressions": [{"key": "app", "operator": "Gt", "values": ["1"]}]},
                "ingress": [{}], "policyTypes": ["Ingress", "Egress"]
            }),
        );
        let r = rules(&[open.clone(), broken]);
        let web = of(&r, "a/web");
        assert_eq!(web.ingress, Some(vec![Allow { peers: Peers::Any, ports: Ports::Any }]));
        assert_eq!(web.egress, Some(vec![]), "the broken policy isolates egress, allows nothing");
        assert_eq!(of(&r, "a/client").ingress, Some(vec![]), "and shuts ingress of the rest");
    }

    #[test]
    fn host_network_finished_and_duplicate_pods() {
        let (mut pods, nss) = cluster();
        let mut host = pod("a", "host", "n1", "192.0.2.1", json!({}), json!([]));
        host.spec.as_mut().unwrap().host_network = Some(true);
        let mut done = pod("a", "done", "n1", "10.88.0.9", json!({}), json!([]));
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        let twin = pod("a", "twin", "n1", "10.88.0.3", json!({}), json!([]));
        pods.extend([host, done, twin]);
        let pods: Vec<&Pod> = pods.iter().collect();
        let nss: Vec<&Namespace> = nss.iter().collect();
        let p = policy(
            "b",
            json!({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {}}]}]}),
        );
        let r = pod_rules("n1", std::slice::from_ref(&p), &pods, &nss);
        let peers = &of(&r, "b/client").ingress.as_ref().unwrap()[0].peers;
        assert_eq!(peers, &addrs(&["10.88.0.2", "10.88.0.3", "10.88.0.4", "10.88.1.5"]));
        assert!(!r.iter().any(|p| p.ip == Ipv4Addr::new(10, 88, 0, 3)), "twins alike: open");
        let q = policy(
            "a",
            json!({"podSelector": {"matchLabels": {"app": "client"}}, "ingress": [{}]}),
        );
        let r = pod_rules("n1", &[p, q], &pods, &nss);
        let twins = r.iter().find(|p| p.ip == Ipv4Addr::new(10, 88, 0, 3)).unwrap();
        assert_eq!(twins.pod, "a/client,a/twin");
        assert_eq!((twins.ingress.clone(), twins.egress.clone()), (Some(vec![]), Some(vec![])));
    }
}
