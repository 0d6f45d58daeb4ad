//! The nftables ruleset that enforces [`PodRules`], as one `nft -f` transaction that replaces
//! the table whole (it keeps no state worth saving: conntrack, which lets replies through, lives
//! outside it).
//!
//! Shape (one `inet` table owned by this node agent, matching IPv4 only):
//! - `forward` (hook forward) sees every packet to or from this node's pods that is not the
//!   node's own: pod to pod on the bridge (bridged frames reach it through br_netfilter, see
//!   [`super::bridge_netfilter`]), pod to and from other nodes and the outside. It runs after
//!   the Service DNAT (nat prerouting) and before any masquerade (nat postrouting), so egress is
//!   judged on the chosen endpoint and ingress on the real client.
//! - `input` (hook input) sees pods' traffic to the node itself: egress only.
//! - Nothing judges the node's own traffic to its pods (hook output): as in Kubernetes, a pod
//!   cannot shut out its node (the agent's probes come from there).
//! - Established and related packets pass first: replies of allowed connections always do.
//! - `egress-pods` / `ingress-pods` map an isolated pod's address to its chain; an allowed
//!   packet `return`s from it (to be judged in the other direction), anything else ends in
//!   `deny`, which rejects so that clients fail at once instead of waiting out a timeout: a TCP
//!   reset, else ICMP administratively prohibited. Not a reset for a connection to a Service:
//!   for a frame that came in over the bridge the kernel sends the reset straight out of the
//!   bridge port, past NAT, so it would come from the endpoint's address and the client, which
//!   called the cluster IP, would ignore it; the ICMP error is routed and un-NATed (the client
//!   sees it for its retransmitted SYN, about a second later).

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::model::{Allow, Peers, PodRules, Ports};

/// A table name for a node agent: unique on the host like the Service table's (several
/// agents, one per test cluster, can share a network namespace, each with its own pod subnet).
pub fn table_name(node: &str, pod_cidr: &str) -> String {
    let services = crate::node::nft_proxy::ruleset::table_name(node, pod_cidr);
    let rest = services.strip_prefix("ringfence-").unwrap_or(&services);
    format!("ringfence-netpol-{rest}")
}

/// An nft script for one table, a command per line.
struct Script {
    table: String,
    text: String,
}

impl Script {
    fn line(&mut self, command: &str) {
        let _ = writeln!(self.text, "{}", command.replace("{t}", &self.table));
    }
}

#[derive(Clone, Copy)]
enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    fn name(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }

    /// The peer's side of the packet.
    fn peer_field(self) -> &'static str {
        match self {
            Direction::Ingress => "saddr",
            Direction::Egress => "daddr",
        }
    }
}

/// The transaction that makes table `table` enforce `pods`.
pub fn render(table: &str, pods: &[PodRules]) -> String {
    let mut s = Script { table: format!("inet {table}"), text: String::new() };
    s.line("add table {t}");
    s.line("delete table {t}");
    s.line("add table {t}");
    s.line("add chain {t} forward { type filter hook forward priority filter; policy accept; }");
    s.line("add chain {t} input { type filter hook input priority filter; policy accept; }");
    s.line("add map {t} ingress-pods { type ipv4_addr : verdict; }");
    s.line("add map {t} egress-pods { type ipv4_addr : verdict; }");
    s.line("add chain {t} deny");
    s.line("add rule {t} deny ct status dnat reject with icmpx type admin-prohibited");
    s.line("add rule {t} deny meta l4proto tcp reject with tcp reset");
    s.line("add rule {t} deny reject with icmpx type admin-prohibited");
    for p in pods {
        for (dir, allows) in [(Direction::Ingress, &p.ingress), (Direction::Egress, &p.egress)] {
            if let Some(allows) = allows {
                pod_chain(&mut s, dir, p.ip, allows);
            }
        }
    }
    for chain in ["forward", "input"] {
        s.line(&format!("add rule {{t}} {chain} ct state established,related accept"));
        s.line(&format!("add rule {{t}} {chain} ip saddr vmap @egress-pods"));
    }
    s.line("add rule {t} forward ip daddr vmap @ingress-pods");
    s.text
}

/// The command that removes the table (it must exist: `add` first).
pub fn remove(table: &str) -> String {
    format!("add table inet {table}\ndelete table inet {table}\n")
}

/// One pod's chain in one direction and its map entry.
fn pod_chain(s: &mut Script, dir: Direction, ip: Ipv4Addr, allows: &[Allow]) {
    let chain = format!("{}-{}", dir.name(), ip.to_string().replace('.', "_"));
    s.line(&format!("add chain {{t}} {chain}"));
    for allow in allows {
        for m in matches(dir, allow) {
            let m = if m.is_empty() { String::new() } else { format!("{m} ") };
            s.line(&format!("add rule {{t}} {chain} {m}return"));
        }
    }
    s.line(&format!("add rule {{t}} {chain} goto deny"));
    s.line(&format!("add element {{t}} {}-pods {{ {ip} : jump {chain} }}", dir.name()));
}

/// The match expressions (one rule each) that together accept what `allow` allows; none when it
/// allows nothing, one empty one when it allows everything.
fn matches(dir: Direction, allow: &Allow) -> Vec<String> {
    let field = dir.peer_field();
    let peers: Vec<String> = match &allow.peers {
        Peers::Any => vec![String::new()],
        Peers::Only { addrs, blocks } => {
            let mut out = Vec::new();
            if !addrs.is_empty() {
                out.push(format!("ip {field} {}", set(addrs.iter().map(|a| a.to_string()))));
            }
            for b in blocks {
                let mut m = format!("ip {field} {}", b.net);
                if !b.except.is_empty() {
                    let _ =
                        write!(m, " ip {field} != {}", set(b.except.iter().map(|e| e.to_string())));
                }
                out.push(m);
            }
            out
        }
    };
    let ports: Vec<String> = match &allow.ports {
        Ports::Any => vec![String::new()],
        Ports::Only(by_proto) => by_proto
            .iter()
            .filter(|(_, ranges)| !ranges.is_empty())
            .map(|(proto, ranges)| {
                let proto = proto.nft();
                if ranges == &[(0, u16::MAX)] {
                    format!("meta l4proto {proto}")
                } else {
                    let items = ranges
                        .iter()
                        .map(|&(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") });
                    format!("meta l4proto {proto} th dport {}", set(items))
                }
            })
            .collect(),
    };
    let mut out = Vec::new();
    for p in &peers {
        for q in &ports {
            out.push(format!("{p} {q}").trim().to_owned());
        }
    }
    out
}

/// An anonymous nft set (never empty: callers only pass non-empty lists).
fn set(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    format!("{{ {} }}", items.join(", "))
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::super::model::Block;
    use super::super::spec::Protocol;
    use super::*;

    const T: &str = "ringfence-netpol-node-a-10_88_0_0_24";

    fn rules_of(script: &str, chain: &str) -> Vec<String> {
        let prefix = format!("add rule inet {T} {chain} ");
        script.lines().filter_map(|l| l.strip_prefix(&prefix)).map(str::to_owned).collect()
    }

    fn web(ingress: Option<Vec<Allow>>, egress: Option<Vec<Allow>>) -> PodRules {
        PodRules { pod: "a/web".into(), ip: [10, 88, 0, 2].into(), ingress, egress }
    }

    fn addrs(ips: &[[u8; 4]]) -> Peers {
        Peers::Only { addrs: ips.iter().map(|&i| Ipv4Addr::from(i)).collect(), blocks: vec![] }
    }

    #[test]
    fn table_names_are_per_agent_and_apart_from_the_service_table() {
        assert_eq!(table_name("node-a", "10.88.0.0/24"), T);
        assert_ne!(table_name("n", "10.88.0.0/24"), table_name("n", "10.88.1.0/24"));
        let odd = table_name("a b;{}\"\n", "x");
        assert!(odd.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c)), "{odd}");
    }

    #[test]
    fn default_deny_jumps_to_deny_and_nothing_else() {
        let s = render(T, &[web(Some(vec![]), None)]);
        assert_eq!(rules_of(&s, "ingress-10_88_0_2"), ["goto deny"]);
        assert!(s.contains("ingress-pods { 10.88.0.2 : jump ingress-10_88_0_2 }"));
        assert!(!s.contains("egress-10_88_0_2"));
        let fwd = rules_of(&s, "forward");
        assert_eq!(
            fwd,
            [
                "ct state established,related accept",
                "ip saddr vmap @egress-pods",
                "ip daddr vmap @ingress-pods"
            ]
        );
        assert_eq!(rules_of(&s, "input")[1], "ip saddr vmap @egress-pods");
        assert!(s.starts_with(&format!("add table inet {T}\ndelete table inet {T}\n")));
        assert_eq!(
            rules_of(&s, "deny"),
            [
                "ct status dnat reject with icmpx type admin-prohibited",
                "meta l4proto tcp reject with tcp reset",
                "reject with icmpx type admin-prohibited"
            ]
        );
    }

    #[test]
    fn peers_and_ports_multiply_into_rules() {
        let allow = Allow {
            peers: Peers::Only {
                addrs: BTreeSet::from([[10, 88, 0, 3].into(), [10, 88, 0, 4].into()]),
                blocks: vec![Block {
                    net: "192.168.0.0/16".parse().unwrap(),
                    except: vec!["192.168.1.0/24".parse().unwrap()],
                }],
            },
            ports: Ports::Only(BTreeMap::from([
                (Protocol::Tcp, vec![(80, 80), (8000, 8100)]),
                (Protocol::Udp, vec![(0, 65535)]),
            ])),
        };
        let s = render(T, &[web(None, Some(vec![allow]))]);
        assert_eq!(
            rules_of(&s, "egress-10_88_0_2"),
            [
                "ip daddr { 10.88.0.3, 10.88.0.4 } meta l4proto tcp th dport { 80, 8000-8100 } return",
                "ip daddr { 10.88.0.3, 10.88.0.4 } meta l4proto udp return",
                "ip daddr 192.168.0.0/16 ip daddr != { 192.168.1.0/24 } meta l4proto tcp th dport { 80, 8000-8100 } return",
                "ip daddr 192.168.0.0/16 ip daddr != { 192.168.1.0/24 } meta l4proto udp return",
                "goto deny",
            ]
        );
    }

    #[test]
    fn only_an_allow_of_everything_makes_a_bare_return() {
        let all = Allow { peers: Peers::Any, ports: Ports::Any };
        let s = render(T, &[web(Some(vec![all]), None)]);
        assert_eq!(rules_of(&s, "ingress-10_88_0_2"), ["return", "goto deny"]);
        // Allows that match nothing (the model drops them, but the generator must not widen
        // them either) give no rule at all.
        let nothing = [
            Allow { peers: addrs(&[]), ports: Ports::Any },
            Allow { peers: Peers::Any, ports: Ports::Only(BTreeMap::new()) },
            Allow {
                peers: Peers::Any,
                ports: Ports::Only(BTreeMap::from([(Protocol::Tcp, vec![])])),
            },
        ];
        let s = render(T, &[web(Some(nothing.to_vec()), None)]);
        assert_eq!(rules_of(&s, "ingress-10_88_0_2"), ["goto deny"]);
    }
}

/// The rulesets go through the real `nft` and kernel, in a network namespace of their own.
#[cfg(test)]
mod nft_tests {
    use serde_json::{Value, json};

    use super::super::{model, spec};
    use super::*;

    fn run_in_new_netns(script: &str) -> (bool, String, String) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rules");
        std::fs::write(&file, script).unwrap();
        let sh = format!("nft -f {f} && nft list table inet {T}", f = file.display());
        let out = std::process::Command::new("unshare")
            .args(["--net", "sh", "-c", &sh])
            .output()
            .expect("run unshare (util-linux)");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success(), stdout, String::from_utf8_lossy(&out.stderr).into_owned())
    }

    const T: &str = "ringfence-netpol-node-a-10_88_0_0_24";

    /// Hostile and odd policies, through the model and the generator, into the kernel.
    #[test]
    fn the_kernel_takes_whatever_the_model_makes_of_hostile_policies() {
        let pod = |name: &str, ip: &str, labels: Value| -> k8s_openapi::api::core::v1::Pod {
            serde_json::from_value(json!({
                "metadata": {"namespace": "a", "name": name, "labels": labels},
                "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [
                    {"name": "http", "containerPort": 80}, {"name": "http", "containerPort": 80},
                    {"name": "big", "containerPort": 70000}, {"name": "s", "containerPort": 7, "protocol": "SCTP"}
                ]}]},
                "status": {"phase": "Running", "podIP": ip}
            }))
            .unwrap()
        };
        let pods =
            [pod("web", "10.88.0.2", json!({"app": "web"})), pod("c", "10.88.0.3", json!({}))];
        let specs = [
            json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"], "ingress": [
                {"from": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "10.88.0.0/16", "10.88.0.0/16"]}},
                          {"ipBlock": {"cidr": "10.88.0.2/32", "except": ["10.88.0.0/24"]}},
                          {"ipBlock": {"cidr": "10.88.0.7/24"}}],
                 "ports": [{"port": 1, "endPort": 65535}, {"port": 80}, {"port": "http"}, {"port": "http"},
                           {"port": "big"}, {"protocol": "SCTP", "port": "s"}, {"protocol": "UDP"},
                           {"port": 65535}, {"port": 100, "endPort": 101}, {"port": 101, "endPort": 102}]},
                {"from": [{"podSelector": {}}, {"namespaceSelector": {}}]},
                {"from": [{"podSelector": {"matchExpressions": [{"key": "x", "operator": "In", "values": ["a", "b"]}]}}]},
            ], "egress": [
                {"to": [{"ipBlock": {"cidr": "203.0.113.0/24"}}], "ports": [{"port": "http"}, {"port": 443}]},
                {"to": [{"podSelector": {}}], "ports": [{"port": "http"}, {"port": "http", "protocol": "UDP"}]},
                {"ports": [{"protocol": "SCTP"}]},
            ]}),
            json!({"podSelector": {"matchLabels": {"app": ["web"]}}, "ingress": "all", "egress": 5}),
            json!({"policyTypes": "Everything", "ingress": [{"ports": [{"port": 5, "endPort": 1}]}]}),
        ];
        let policies: Vec<spec::PolicySpec> =
            specs.iter().map(|s| spec::parse("a", "p", s)).collect();
        let pods: Vec<&k8s_openapi::api::core::v1::Pod> = pods.iter().collect();
        let rules = model::pod_rules("n1", &policies, &pods, &[]);
        assert_eq!(rules.len(), 2);
        let script = render(T, &rules);
        let (ok, listed, err) = run_in_new_netns(&script);
        assert!(ok, "nft refused a ruleset: {err}\n{script}");
        assert!(listed.contains("ingress-10_88_0_2"), "{listed}");
        assert!(listed.contains("reject with tcp reset"), "{listed}");
        // The broken policies select every pod and allow nothing.
        for ip in ["10_88_0_2", "10_88_0_3"] {
            assert!(rules_of(&script, &format!("ingress-{ip}")).last().unwrap() == "goto deny");
        }
    }

    fn rules_of(script: &str, chain: &str) -> Vec<String> {
        let prefix = format!("add rule inet {T} {chain} ");
        script.lines().filter_map(|l| l.strip_prefix(&prefix)).map(str::to_owned).collect()
    }

    #[test]
    fn the_kernel_takes_an_empty_ruleset_and_its_removal() {
        let script = format!("{}{}", render(T, &[]), remove(T));
        let (ok, _, err) = run_in_new_netns(&format!("{script}add table inet {T}\n"));
        assert!(ok, "{err}\n{script}");
    }
}
