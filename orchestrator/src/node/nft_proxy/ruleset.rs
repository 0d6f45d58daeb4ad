//! The nftables ruleset of the Service data path, as one `nft -f` transaction: a pure function
//! of the table's configuration, the Service ports and what the previous transaction created.
//!
//! Shape (all in one `ip` table owned by this node agent):
//! - `services` (jumped to from the nat prerouting and output hooks) looks the destination up
//!   in the `cluster-ip-ports` verdict map, then, for a local destination, in `node-port-map`;
//!   each hit goes to that Service port's chain, which picks an endpoint chain (a client's
//!   remembered endpoint first when it has ClientIP affinity, else at random); the endpoint
//!   chain DNATs.
//! - Only Service ports with ready endpoints are in the maps. Packets still addressed to a
//!   cluster IP after DNAT, or reaching the node's input for a node port, had nowhere to go
//!   and are rejected (TCP reset, ICMP port unreachable for UDP) so that clients fail fast.
//! - Connections that need their source rewritten carry [`MASQUERADE_MARK`] and are
//!   masqueraded on the way out. That is every node-port connection and every connection of the
//!   node itself to a cluster IP (the reply of an endpoint on
//!   another node must come back through this one, and one from 127.0.0.1 needs a routable
//!   source), and a connection from a pod of this node's subnet to an endpoint in the same
//!   subnet: without it the endpoint's reply to the client pod would be bridged straight to it
//!   (same L2 segment), bypassing the host's conntrack, and the client would drop a reply from an
//!   address it never called. Masquerading makes the reply go to the gateway, where conntrack
//!   undoes both translations; it works with or without br_netfilter.
//!
//! Every transaction redefines all chains, maps and sets in place rather than deleting the
//! table, so that the affinity sets (the clients' remembered endpoints) survive updates; the
//! first one of a process replaces the table wholesale.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use super::model::ServicePort;

/// The packet mark bit that asks for masquerading (the one kube-proxy uses).
pub const MASQUERADE_MARK: u32 = 0x4000;

/// What is fixed for the life of one node agent.
#[derive(Clone, Debug)]
pub struct TableConfig {
    /// The table's name (see [`table_name`]).
    pub name: String,
    /// This node's pod subnet (address, prefix length).
    pub pod_cidr: Option<(Ipv4Addr, u8)>,
    /// The pod bridge, when the node's loopback node ports are routed to it: packets arriving
    /// on it for 127.0.0.0/8 are then dropped (with route_localnet on, the kernel would let
    /// pods reach the node's loopback services otherwise).
    pub localnet_bridge: Option<String>,
}

/// The chains and sets a transaction created beyond the fixed ones, so that the next one can
/// delete what it no longer needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Objects {
    pub chains: BTreeSet<String>,
    pub sets: BTreeSet<String>,
}

/// One transaction and the objects the table holds after it.
#[derive(Clone, Debug)]
pub struct Ruleset {
    pub script: String,
    pub objects: Objects,
}

/// A table name for a node agent: unique on the host (several agents, one per test cluster,
/// can share a network namespace, each with its own pod subnet) and valid in nft.
pub fn table_name(node: &str, pod_cidr: &str) -> String {
    let node: String = sanitize(node).chars().take(48).collect();
    let cidr = sanitize(pod_cidr).replace(['.', '/'], "_");
    format!("ringfence-{node}-{cidr}")
}

/// A pod subnet like 10.88.0.0/24.
pub fn parse_cidr(cidr: &str) -> Option<(Ipv4Addr, u8)> {
    let net = cidr.parse::<ipnet::Ipv4Net>().ok()?.trunc();
    Some((net.network(), net.prefix_len()))
}

fn contains((net, len): (Ipv4Addr, u8), ip: Ipv4Addr) -> bool {
    ipnet::Ipv4Net::new(net, len).is_ok_and(|n| n.contains(&ip))
}

/// Keeps what nft accepts in an unquoted name; the rest becomes `_`.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(
            |c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/') {
                    c
                } else {
                    '_'
                }
            },
        )
        .collect()
}

/// A chain or set name: a prefix, a hash of the full key (names are truncated, the hash keeps
/// them apart) and a readable part.
fn object_name(prefix: &str, key: &str) -> String {
    let hash = crate::controllers::common::fnv32a(key.as_bytes());
    let readable: String = sanitize(key).chars().take(96).collect();
    format!("{prefix}-{hash:08x}-{readable}")
}

struct Names {
    service: String,
    endpoints: Vec<(String, Option<String>)>,
}

fn names(p: &ServicePort) -> Names {
    let endpoints = p
        .endpoints
        .iter()
        .map(|e| {
            let key = format!("{}/{e}", p.id);
            // The timeout is part of a set's definition: a new one makes a new set.
            let set = p.affinity_seconds.map(|t| object_name("affinity", &format!("{key}/{t}")));
            (object_name("endpoint", &key), set)
        })
        .collect();
    Names { service: object_name("service", &p.id), endpoints }
}

/// The fixed chains: base chains (name, hook, priority, type) and regular ones.
const BASE_CHAINS: [(&str, &str, &str, i32); 7] = [
    ("nat-prerouting", "nat", "prerouting", -100),
    ("nat-output", "nat", "output", -100),
    ("nat-postrouting", "nat", "postrouting", 100),
    ("filter-prerouting", "filter", "prerouting", -110),
    ("filter-input", "filter", "input", 0),
    ("filter-forward", "filter", "forward", 0),
    ("filter-output", "filter", "output", 0),
];
const CHAINS: [&str; 2] = ["services", "reject-unserved"];

/// An nft script for one table, a command per line.
struct Script {
    table: String,
    text: String,
}

impl Script {
    /// Appends `command` with `{t}` standing for the table.
    fn line(&mut self, command: &str) {
        self.text.push_str(&command.replace("{t}", &self.table));
        self.text.push('\n');
    }
}

/// The transaction that makes table `config.name` implement `ports`, given what the previous
/// transaction of this process left (None: replace whatever table of that name exists).
pub fn render(config: &TableConfig, ports: &[ServicePort], previous: Option<&Objects>) -> Ruleset {
    let mut s = Script { table: format!("ip {}", config.name), text: String::new() };
    let named: Vec<(&ServicePort, Names)> = ports.iter().map(|p| (p, names(p))).collect();
    let objects = declare(&mut s, &named, previous);
    fixed_rules(&mut s, config);
    service_rules(&mut s, config, &named);
    Ruleset { script: s.text, objects }
}

/// Declares every chain, map and set (empty), deletes what the previous transaction had and
/// this one does not; returns what the table then holds beyond the fixed objects.
fn declare(s: &mut Script, named: &[(&ServicePort, Names)], previous: Option<&Objects>) -> Objects {
    s.line("add table {t}");
    if previous.is_none() {
        s.line("delete table {t}");
        s.line("add table {t}");
    }
    for (name, kind, hook, prio) in BASE_CHAINS {
        s.line(&format!(
            "add chain {{t}} {name} {{ type {kind} hook {hook} priority {prio}; policy accept; }}"
        ));
    }
    for name in CHAINS {
        s.line(&format!("add chain {{t}} {name}"));
    }
    s.line(
        "add map {t} cluster-ip-ports { type ipv4_addr . inet_proto . inet_service : verdict; }",
    );
    s.line("add map {t} node-port-map { type inet_proto . inet_service : verdict; }");
    s.line("add set {t} cluster-ips { type ipv4_addr; }");
    s.line("add set {t} node-ports { type inet_proto . inet_service; }");

    let mut objects = Objects::default();
    for (p, n) in named.iter().filter(|(p, _)| !p.endpoints.is_empty()) {
        objects.chains.insert(n.service.clone());
        for (chain, set) in &n.endpoints {
            objects.chains.insert(chain.clone());
            objects.sets.extend(set.clone().filter(|_| p.affinity_seconds.is_some()));
        }
    }
    let empty = Objects::default();
    let previous = previous.unwrap_or(&empty);
    let all_chains = objects.chains.union(&previous.chains);
    for name in all_chains.clone() {
        s.line(&format!("add chain {{t}} {name}"));
    }
    // Emptied before anything is deleted: a chain or set still referenced cannot go.
    let fixed = BASE_CHAINS.iter().map(|c| c.0).chain(CHAINS);
    for name in fixed.chain(all_chains.map(String::as_str)) {
        s.line(&format!("flush chain {{t}} {name}"));
    }
    let maps = [("map", "cluster-ip-ports"), ("map", "node-port-map")];
    for (kind, name) in maps.into_iter().chain([("set", "cluster-ips"), ("set", "node-ports")]) {
        s.line(&format!("flush {kind} {{t}} {name}"));
    }
    for name in previous.chains.difference(&objects.chains) {
        s.line(&format!("delete chain {{t}} {name}"));
    }
    for (p, n) in named.iter().filter(|(p, _)| !p.endpoints.is_empty()) {
        for set in n.endpoints.iter().filter_map(|(_, set)| set.as_ref()) {
            if let Some(timeout) = p.affinity_seconds {
                s.line(&format!(
                    "add set {{t}} {set} {{ type ipv4_addr; flags dynamic,timeout; timeout {timeout}s; }}"
                ));
            }
        }
    }
    for name in previous.sets.difference(&objects.sets) {
        s.line(&format!("delete set {{t}} {name}"));
    }
    objects
}

/// The rules that do not depend on the Services: the hooks, node ports, masquerading, rejects.
fn fixed_rules(s: &mut Script, config: &TableConfig) {
    let mark = format!("0x{MASQUERADE_MARK:x}");
    s.line("add rule {t} nat-prerouting jump services");
    // The node's own connections to cluster IPs leave from an address other nodes may not
    // route back to (its default route's): they take the outgoing link's, as kube-proxy
    // masquerades cluster IP traffic from outside the cluster.
    s.line(&format!(
        "add rule {{t}} nat-output ip daddr @cluster-ips meta mark set meta mark or {mark}"
    ));
    s.line("add rule {t} nat-output jump services");
    s.line(&format!("add rule {{t}} nat-postrouting meta mark and {mark} != 0 masquerade"));
    s.line("add rule {t} services ip daddr . meta l4proto . th dport vmap @cluster-ip-ports");
    s.line(&format!(
        "add rule {{t}} services fib daddr type local meta l4proto . th dport @node-ports \
         meta mark set meta mark or {mark}"
    ));
    s.line(
        "add rule {t} services fib daddr type local meta l4proto . th dport vmap @node-port-map",
    );
    if let Some(bridge) = &config.localnet_bridge {
        let bridge = sanitize(bridge);
        s.line(&format!(
            "add rule {{t}} filter-prerouting iifname \"{bridge}\" ip daddr 127.0.0.0/8 drop"
        ));
    }
    // Still addressed to a node port at input, or to a cluster IP after DNAT: unserved.
    s.line(
        "add rule {t} filter-input fib daddr type local meta l4proto . th dport @node-ports \
         jump reject-unserved",
    );
    s.line("add rule {t} filter-forward ip daddr @cluster-ips jump reject-unserved");
    s.line("add rule {t} filter-output ip daddr @cluster-ips jump reject-unserved");
    s.line("add rule {t} reject-unserved meta l4proto tcp reject with tcp reset");
    s.line("add rule {t} reject-unserved reject");
}

/// Each Service port's map entries, its chain (affinity, then a random pick) and its
/// endpoints' chains (masquerade mark, affinity update, DNAT).
fn service_rules(s: &mut Script, config: &TableConfig, named: &[(&ServicePort, Names)]) {
    let mark = format!("0x{MASQUERADE_MARK:x}");
    let mut cluster_ips = BTreeSet::new();
    let mut frontends = BTreeSet::new();
    let mut claimed_node_ports = BTreeSet::new();
    let mut node_ports = BTreeSet::new();
    for (p, n) in named {
        let proto = p.protocol.nft();
        cluster_ips.insert(p.cluster_ip);
        if let Some(np) = p.node_port {
            node_ports.insert((proto, np));
        }
        if p.endpoints.is_empty() {
            continue;
        }
        // Two Services claiming one address and port (or one node port): the first keeps it,
        // since a map holds one verdict per key and a clash would fail the whole transaction.
        let svc = &n.service;
        if frontends.insert((p.cluster_ip, proto, p.port)) {
            s.line(&format!(
                "add element {{t}} cluster-ip-ports {{ {} . {proto} . {} : goto {svc} }}",
                p.cluster_ip, p.port
            ));
        }
        if let Some(np) = p.node_port
            && claimed_node_ports.insert((proto, np))
        {
            s.line(&format!("add element {{t}} node-port-map {{ {proto} . {np} : goto {svc} }}"));
        }
        for (chain, set) in &n.endpoints {
            if let Some(set) = set {
                s.line(&format!("add rule {{t}} {svc} ip saddr @{set} goto {chain}"));
            }
        }
        match n.endpoints.as_slice() {
            [(only, _)] => s.line(&format!("add rule {{t}} {svc} goto {only}")),
            many => {
                let picks: Vec<String> =
                    many.iter().enumerate().map(|(i, (c, _))| format!("{i} : goto {c}")).collect();
                s.line(&format!(
                    "add rule {{t}} {svc} numgen random mod {} vmap {{ {} }}",
                    many.len(),
                    picks.join(", ")
                ));
            }
        }
        for (e, (chain, set)) in p.endpoints.iter().zip(&n.endpoints) {
            if let Some((net, len)) = config.pod_cidr.filter(|c| contains(*c, *e.ip())) {
                s.line(&format!(
                    "add rule {{t}} {chain} ip saddr {net}/{len} meta mark set meta mark or {mark}"
                ));
            }
            if let Some(set) = set {
                s.line(&format!("add rule {{t}} {chain} update @{set} {{ ip saddr }}"));
            }
            s.line(&format!("add rule {{t}} {chain} meta l4proto {proto} dnat to {e}"));
        }
    }
    if !cluster_ips.is_empty() {
        let ips: Vec<String> = cluster_ips.iter().map(Ipv4Addr::to_string).collect();
        s.line(&format!("add element {{t}} cluster-ips {{ {} }}", ips.join(", ")));
    }
    if !node_ports.is_empty() {
        let ports: Vec<String> = node_ports.iter().map(|(p, n)| format!("{p} . {n}")).collect();
        s.line(&format!("add element {{t}} node-ports {{ {} }}", ports.join(", ")));
    }
}

/// The transaction that removes the table (when the agent stops).
pub fn remove(config: &TableConfig) -> String {
    let mut s = Script { table: format!("ip {}", config.name), text: String::new() };
    s.line("add table {t}");
    s.line("delete table {t}");
    s.text
}

#[cfg(test)]
mod tests {
    use super::super::model::Protocol;
    use super::*;

    fn config() -> TableConfig {
        TableConfig {
            name: table_name("node-a", "10.88.0.0/24"),
            pod_cidr: parse_cidr("10.88.0.0/24"),
            localnet_bridge: Some("rf0".into()),
        }
    }

    fn port(id: &str, ip: [u8; 4], endpoints: &[&str]) -> ServicePort {
        ServicePort {
            id: id.into(),
            cluster_ip: ip.into(),
            port: 80,
            protocol: Protocol::Tcp,
            node_port: None,
            affinity_seconds: None,
            endpoints: endpoints.iter().map(|e| e.parse().unwrap()).collect(),
        }
    }

    fn rules_of(script: &str, chain: &str) -> Vec<String> {
        let prefix = format!("add rule ip {} {chain} ", config().name);
        script.lines().filter_map(|l| l.strip_prefix(&prefix)).map(str::to_owned).collect()
    }

    #[test]
    fn names_are_unique_per_node_and_valid_in_nft() {
        assert_eq!(table_name("node-a", "10.88.0.0/24"), "ringfence-node-a-10_88_0_0_24");
        assert_ne!(table_name("n", "10.88.0.0/24"), table_name("n", "10.88.1.0/24"));
        let odd = table_name("a b;{}\"\n", "x");
        assert!(odd.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c)), "{odd}");
        assert_eq!(parse_cidr("10.88.0.7/24"), Some(([10, 88, 0, 0].into(), 24)));
        assert_eq!(parse_cidr("0.0.0.0/0"), Some(([0, 0, 0, 0].into(), 0)));
        assert_eq!(parse_cidr("10.88.0.0/33"), None);
        assert_eq!(parse_cidr("fd00::/64"), None);
    }

    #[test]
    fn a_service_port_balances_over_its_endpoints_and_masquerades_same_subnet_clients() {
        let mut web =
            port("default/web/http/tcp", [10, 96, 0, 10], &["10.88.0.2:8080", "10.9.0.3:8080"]);
        web.node_port = Some(30080);
        let r = render(&config(), &[web], None);
        let s = &r.script;
        assert!(s.starts_with("add table ip ringfence-node-a-10_88_0_0_24\ndelete table"), "{s}");
        let svc = r.objects.chains.iter().find(|c| c.starts_with("service-")).unwrap();
        assert!(s.contains(&format!("cluster-ip-ports {{ 10.96.0.10 . tcp . 80 : goto {svc} }}")));
        assert!(s.contains(&format!("node-port-map {{ tcp . 30080 : goto {svc} }}")));
        let pick = rules_of(s, svc);
        assert_eq!(pick.len(), 1);
        assert!(pick[0].starts_with("numgen random mod 2 vmap { 0 : goto endpoint-"), "{pick:?}");
        let eps: Vec<&String> =
            r.objects.chains.iter().filter(|c| c.starts_with("endpoint-")).collect();
        assert_eq!(eps.len(), 2);
        let local = rules_of(s, eps.iter().find(|c| c.contains("10.88.0.2")).unwrap());
        assert_eq!(
            local,
            [
                "ip saddr 10.88.0.0/24 meta mark set meta mark or 0x4000",
                "meta l4proto tcp dnat to 10.88.0.2:8080"
            ]
        );
        let remote = rules_of(s, eps.iter().find(|c| c.contains("10.9.0.3")).unwrap());
        assert_eq!(remote, ["meta l4proto tcp dnat to 10.9.0.3:8080"], "another node's pod");
        assert!(s.contains("filter-prerouting iifname \"rf0\" ip daddr 127.0.0.0/8 drop"));
        assert!(
            s.contains("add element ip ringfence-node-a-10_88_0_0_24 node-ports { tcp . 30080 }")
        );
    }

    #[test]
    fn client_ip_affinity_remembers_each_clients_endpoint() {
        let mut web =
            port("default/web/http/tcp", [10, 96, 0, 10], &["10.88.0.2:80", "10.88.0.3:80"]);
        web.affinity_seconds = Some(60);
        let r = render(&config(), &[web], None);
        assert_eq!(r.objects.sets.len(), 2);
        for set in &r.objects.sets {
            assert!(r.script.contains(&format!(
                "add set ip {} {set} {{ type ipv4_addr; flags dynamic,timeout; timeout 60s; }}",
                config().name
            )));
        }
        let svc = r.objects.chains.iter().find(|c| c.starts_with("service-")).unwrap();
        let rules = rules_of(&r.script, svc);
        assert_eq!(rules.len(), 3, "{rules:?}");
        assert!(
            rules[0].starts_with("ip saddr @affinity-") && rules[0].contains(" goto endpoint-")
        );
        assert!(rules[2].starts_with("numgen random mod 2"));
        let ep = r.objects.chains.iter().find(|c| c.starts_with("endpoint-")).unwrap();
        assert!(rules_of(&r.script, ep).iter().any(|l| l.starts_with("update @affinity-")));
    }

    #[test]
    fn services_without_endpoints_are_only_rejected() {
        let mut lonely = port("default/lonely//udp", [10, 96, 0, 12], &[]);
        lonely.protocol = Protocol::Udp;
        lonely.node_port = Some(30999);
        let r = render(&config(), &[lonely], None);
        assert!(r.objects.chains.is_empty() && r.objects.sets.is_empty());
        assert!(
            !r.script.contains("add element ip ringfence-node-a-10_88_0_0_24 cluster-ip-ports")
        );
        assert!(r.script.contains("cluster-ips { 10.96.0.12 }"));
        assert!(r.script.contains("node-ports { udp . 30999 }"));
        let reject = rules_of(&r.script, "reject-unserved");
        assert_eq!(reject, ["meta l4proto tcp reject with tcp reset", "reject"]);
    }

    #[test]
    fn updates_remove_what_is_gone_and_keep_the_table() {
        let mut a = port("default/a//tcp", [10, 96, 0, 1], &["10.88.0.2:80", "10.88.0.3:80"]);
        a.affinity_seconds = Some(30);
        let first = render(&config(), std::slice::from_ref(&a), None);
        a.endpoints.pop();
        let second = render(&config(), &[a], Some(&first.objects));
        let s = &second.script;
        assert!(!s.contains("delete table"), "affinity sets survive an update: {s}");
        let gone: Vec<_> = first.objects.chains.difference(&second.objects.chains).collect();
        assert_eq!(gone.len(), 1);
        let flush = s.find(&format!("flush chain ip {} {}", config().name, gone[0])).unwrap();
        let delete = s.find(&format!("delete chain ip {} {}", config().name, gone[0])).unwrap();
        assert!(flush < delete);
        let set_gone: Vec<_> = first.objects.sets.difference(&second.objects.sets).collect();
        assert_eq!(set_gone.len(), 1);
        assert!(s.contains(&format!("delete set ip {} {}", config().name, set_gone[0])));
    }

    #[test]
    fn clashing_frontends_keep_the_first_and_never_repeat_a_key() {
        let mut a = port("a/a//tcp", [10, 96, 0, 1], &["10.88.0.2:80"]);
        let mut b = port("b/b//tcp", [10, 96, 0, 1], &["10.88.0.3:80"]);
        a.node_port = Some(30000);
        b.node_port = Some(30000);
        let r = render(&config(), &[a, b], None);
        assert_eq!(r.script.matches("cluster-ip-ports { 10.96.0.1 . tcp . 80").count(), 1);
        assert_eq!(r.script.matches("node-port-map { tcp . 30000").count(), 1);
        assert!(r.script.contains("node-ports { tcp . 30000 }"));
    }

    #[test]
    fn hostile_ids_make_names_nft_accepts() {
        let ids = ["x/\"; flush ruleset; \"/p/tcp", "é/{}/@/tcp", &"n".repeat(1000), ""];
        let ports: Vec<ServicePort> =
            ids.iter().map(|id| port(id, [10, 96, 0, 1], &["10.88.0.2:80"])).collect();
        let r = render(&config(), &ports, None);
        for name in r.objects.chains.iter().chain(&r.objects.sets) {
            assert!(name.len() < 128, "{name}");
            assert!(name.starts_with(|c: char| c.is_ascii_lowercase()));
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c)),
                "{name}"
            );
        }
        assert!(!r.script.contains("flush ruleset"));
    }
}

/// The rulesets go through the real `nft` and kernel, in a network namespace of their own.
#[cfg(test)]
mod nft_tests {
    use super::super::model::Protocol;
    use super::*;

    #[test]
    fn the_kernel_takes_a_first_ruleset_and_an_update() {
        let config = TableConfig {
            name: table_name("node-a", "10.88.0.0/24"),
            pod_cidr: parse_cidr("10.88.0.0/24"),
            localnet_bridge: Some("rf0".into()),
        };
        let mut ports = vec![
            ServicePort {
                id: "default/web/http/tcp".into(),
                cluster_ip: [10, 96, 0, 10].into(),
                port: 80,
                protocol: Protocol::Tcp,
                node_port: Some(30080),
                affinity_seconds: Some(60),
                endpoints: vec![
                    "10.88.0.2:8080".parse().unwrap(),
                    "10.9.0.3:8080".parse().unwrap(),
                ],
            },
            ServicePort {
                id: "default/dns/dns/udp".into(),
                cluster_ip: [10, 96, 0, 11].into(),
                port: 53,
                protocol: Protocol::Udp,
                node_port: Some(30053),
                affinity_seconds: None,
                endpoints: vec!["10.88.0.4:5353".parse().unwrap()],
            },
        ];
        let first = render(&config, &ports, None);
        ports[0].endpoints.pop();
        ports[1].endpoints.clear();
        let second = render(&config, &ports, Some(&first.objects));
        // Nothing changed: the same objects again.
        let third = render(&config, &ports, Some(&second.objects));
        let dir = tempfile::tempdir().unwrap();
        let [a, b, c] = ["first", "second", "third"].map(|n| dir.path().join(n));
        std::fs::write(&a, &first.script).unwrap();
        std::fs::write(&b, &second.script).unwrap();
        std::fs::write(&c, &third.script).unwrap();
        // The last, a first ruleset again, replaces the table (a restarted agent).
        let script = format!(
            "nft -f {a} && nft -f {b} && nft -f {c} && nft list table ip {t} && nft -f {a}",
            a = a.display(),
            b = b.display(),
            c = c.display(),
            t = config.name
        );
        let out = std::process::Command::new("unshare")
            .args(["--net", "sh", "-c", &script])
            .output()
            .expect("run unshare (util-linux)");
        let listed = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "nft refused a ruleset: {}\n{listed}\nfirst:\n{}\nsecond:\n{}",
            String::from_utf8_lossy(&out.stderr),
            first.script,
            second.script
        );
        assert!(listed.contains("dnat to 10.88.0.2:8080"), "{listed}");
        assert!(!listed.contains("10.9.0.3"), "the removed endpoint is gone: {listed}");
        assert!(!listed.contains("udp . 53 :"), "no endpoints, no DNAT: {listed}");
    }
}
