//! A stored NetworkPolicy read defensively, from its raw JSON: the API may hold objects that
//! a typed decode would drop whole (a port past i32, a float), and a dropped policy would
//! isolate nothing. Whatever cannot be read is read as allowing nothing: an unreadable peer or
//! port matches no traffic, an unreadable pod selector isolates every pod of the namespace
//! without allowing anything, unreadable policy types isolate both ways. Never more open than
//! the policy says.

use ipnet::Ipv4Net;
use serde_json::Value;

use crate::api::selector::LabelSelector;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// The name nft uses for it.
    pub fn nft(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }

    /// A Kubernetes protocol (absent means TCP; names are case-sensitive, as in the API).
    pub fn parse(v: Option<&Value>) -> Option<Protocol> {
        match v {
            None | Some(Value::Null) => Some(Protocol::Tcp),
            Some(Value::String(s)) => match s.as_str() {
                "TCP" => Some(Protocol::Tcp),
                "UDP" => Some(Protocol::Udp),
                "SCTP" => Some(Protocol::Sctp),
                _ => None,
            },
            Some(_) => None,
        }
    }
}

/// One entry of a rule's `ports`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortSpec {
    /// Ports `first..=last` (every port when `port` is absent).
    Range { protocol: Protocol, first: u16, last: u16 },
    /// A container port's name, resolved against the destination pod.
    Named { protocol: Protocol, name: String },
}

/// One entry of a rule's `from` or `to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerSpec {
    /// Pods matching `pods` in the namespaces matching `namespaces` (None: the policy's own).
    Pods { namespaces: Option<LabelSelector>, pods: LabelSelector },
    /// Addresses in `net` but in none of `except`.
    Block { net: Ipv4Net, except: Vec<Ipv4Net> },
}

/// One ingress or egress rule. None means "every peer" / "every port"; Some(empty) (every entry
/// unreadable) means the rule matches nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSpec {
    pub peers: Option<Vec<PeerSpec>>,
    pub ports: Option<Vec<PortSpec>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicySpec {
    pub namespace: String,
    pub name: String,
    /// None when unreadable: then it selects every pod of its namespace and allows nothing.
    pub pod_selector: Option<LabelSelector>,
    /// Some when the policy isolates ingress: the rules (empty: deny all).
    pub ingress: Option<Vec<RuleSpec>>,
    pub egress: Option<Vec<RuleSpec>>,
}

/// Reads one policy's `spec`.
pub fn parse(namespace: &str, name: &str, spec: &Value) -> PolicySpec {
    let pod_selector = selector(spec.get("podSelector").unwrap_or(&Value::Null));
    let (isolates_ingress, isolates_egress) = policy_types(spec);
    let rules = |key: &str, peers: &str| -> Vec<RuleSpec> {
        match spec.get(key) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(rules)) => rules.iter().map(|r| rule(r, peers)).collect(),
            // Not a list: nothing it says can be trusted.
            Some(_) => Vec::new(),
        }
    };
    PolicySpec {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        pod_selector,
        ingress: isolates_ingress.then(|| rules("ingress", "from")),
        egress: isolates_egress.then(|| rules("egress", "to")),
    }
}

/// Which directions the policy isolates, defaulted as the API does when `policyTypes` is
/// absent or empty: Ingress always, Egress when there are egress rules.
fn policy_types(spec: &Value) -> (bool, bool) {
    let has_egress_rules =
        spec.get("egress").and_then(Value::as_array).is_some_and(|r| !r.is_empty());
    match spec.get("policyTypes") {
        None | Some(Value::Null) => (true, has_egress_rules),
        Some(Value::Array(types)) if types.is_empty() => (true, has_egress_rules),
        Some(Value::Array(types)) => {
            let (mut ingress, mut egress) = (false, false);
            for t in types {
                match t.as_str() {
                    Some("Ingress") => ingress = true,
                    Some("Egress") => egress = true,
                    _ => return (true, true),
                }
            }
            (ingress, egress)
        }
        Some(_) => (true, true),
    }
}

fn rule(rule: &Value, peers_key: &str) -> RuleSpec {
    if !rule.is_object() {
        return RuleSpec { peers: Some(Vec::new()), ports: Some(Vec::new()) };
    }
    let peers = match rule.get(peers_key) {
        None | Some(Value::Null) => None,
        Some(Value::Array(list)) if list.is_empty() => None,
        Some(Value::Array(list)) => Some(list.iter().filter_map(peer).collect()),
        Some(_) => Some(Vec::new()),
    };
    let ports = match rule.get("ports") {
        None | Some(Value::Null) => None,
        Some(Value::Array(list)) if list.is_empty() => None,
        Some(Value::Array(list)) => Some(list.iter().filter_map(port).collect()),
        Some(_) => Some(Vec::new()),
    };
    RuleSpec { peers, ports }
}

fn peer(p: &Value) -> Option<PeerSpec> {
    if !p.is_object() {
        return None;
    }
    let pods = p.get("podSelector").filter(|v| !v.is_null());
    let namespaces = p.get("namespaceSelector").filter(|v| !v.is_null());
    let block = p.get("ipBlock").filter(|v| !v.is_null());
    match (pods, namespaces, block) {
        (None, None, Some(b)) => ip_block(b),
        (pods, namespaces, None) if pods.is_some() || namespaces.is_some() => {
            let pods = match pods {
                Some(s) => selector(s)?,
                None => LabelSelector::default(),
            };
            let namespaces = match namespaces {
                Some(s) => Some(selector(s)?),
                None => None,
            };
            Some(PeerSpec::Pods { namespaces, pods })
        }
        // Empty, or selectors and a block together: the API forbids both.
        _ => None,
    }
}

fn ip_block(b: &Value) -> Option<PeerSpec> {
    let net: Ipv4Net = b.get("cidr")?.as_str()?.trim().parse().ok()?;
    let except = match b.get("except") {
        None | Some(Value::Null) => Vec::new(),
        // One unreadable exception and the block would allow what it excepts: drop it whole.
        Some(Value::Array(list)) => list
            .iter()
            .map(|e| e.as_str().and_then(|s| s.trim().parse::<Ipv4Net>().ok()).map(|n| n.trunc()))
            .collect::<Option<Vec<_>>>()?,
        Some(_) => return None,
    };
    Some(PeerSpec::Block { net: net.trunc(), except })
}

fn port(p: &Value) -> Option<PortSpec> {
    if !p.is_object() {
        return None;
    }
    let protocol = Protocol::parse(p.get("protocol"))?;
    let end = p.get("endPort").filter(|v| !v.is_null());
    match (p.get("port").filter(|v| !v.is_null()), end) {
        (None, None) => Some(PortSpec::Range { protocol, first: 0, last: u16::MAX }),
        (Some(Value::Number(n)), end) => {
            let first = n.as_u64().and_then(|n| u16::try_from(n).ok()).filter(|n| *n != 0)?;
            let last = match end {
                None => first,
                Some(e) => {
                    e.as_u64().and_then(|n| u16::try_from(n).ok()).filter(|e| *e >= first)?
                }
            };
            Some(PortSpec::Range { protocol, first, last })
        }
        (Some(Value::String(name)), None) if !name.is_empty() => {
            Some(PortSpec::Named { protocol, name: name.clone() })
        }
        // endPort without a numeric port, an empty name, anything else.
        _ => None,
    }
}

/// A `metav1.LabelSelector`, checked more strictly than [`LabelSelector::from_object`] (which
/// skips values that are not strings: `NotIn [a, 5]` would become `NotIn [a]`, matching more).
/// None when anything in it is off, as the API's own conversion would refuse it.
pub fn selector(sel: &Value) -> Option<LabelSelector> {
    match sel {
        Value::Null => return Some(LabelSelector::default()),
        Value::Object(_) => {}
        _ => return None,
    }
    match sel.get("matchLabels") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) if m.values().all(Value::is_string) => {}
        Some(_) => return None,
    }
    match sel.get("matchExpressions") {
        None | Some(Value::Null) => {}
        Some(Value::Array(exprs)) => {
            for e in exprs {
                let values = match e.get("values") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(v)) if v.iter().all(Value::is_string) => v.clone(),
                    Some(_) => return None,
                };
                e.get("key").and_then(Value::as_str).filter(|k| !k.is_empty())?;
                let ok = match e.get("operator").and_then(Value::as_str) {
                    Some("In" | "NotIn") => !values.is_empty(),
                    Some("Exists" | "DoesNotExist") => values.is_empty(),
                    _ => false,
                };
                if !ok {
                    return None;
                }
            }
        }
        Some(_) => return None,
    }
    LabelSelector::from_object(sel).ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(v: Value) -> PolicySpec {
        parse("ns", "p", &v)
    }

    #[test]
    fn policy_types_default_as_the_api_does() {
        let p = spec(json!({"podSelector": {}}));
        assert_eq!((p.ingress.clone(), p.egress.clone()), (Some(vec![]), None));
        let p = spec(json!({"podSelector": {}, "egress": [{}]}));
        assert!(p.ingress.is_some() && p.egress.as_ref().is_some_and(|e| e.len() == 1));
        let p = spec(json!({"podSelector": {}, "egress": []}));
        assert!(p.egress.is_none(), "an empty egress list does not imply Egress");
        let p = spec(json!({"policyTypes": ["Egress"]}));
        assert_eq!((p.ingress.is_some(), p.egress), (false, Some(vec![])));
        for odd in [json!(["Ingress", "Sideways"]), json!("Ingress"), json!([7])] {
            let p = spec(json!({"policyTypes": odd}));
            assert_eq!(p.ingress, Some(vec![]), "{odd}: isolates ingress, allows nothing");
            assert_eq!(p.egress, Some(vec![]), "{odd}: isolates egress, allows nothing");
        }
    }

    #[test]
    fn empty_or_missing_peer_and_port_lists_mean_all_and_unreadable_ones_mean_none() {
        let p = spec(json!({"ingress": [{}, {"from": [], "ports": []}, {"from": null}]}));
        for r in p.ingress.unwrap() {
            assert_eq!(r, RuleSpec { peers: None, ports: None });
        }
        let p = spec(json!({"ingress": [
            {"from": "everyone", "ports": 80},
            {"from": [{}], "ports": [{"port": 70000}]},
            "a string rule",
        ]}));
        for r in p.ingress.unwrap() {
            assert_eq!(r.peers, Some(vec![]), "{r:?}");
            assert_eq!(r.ports, Some(vec![]), "{r:?}");
        }
        let p = spec(json!({"ingress": "all"}));
        assert_eq!(p.ingress, Some(vec![]), "unreadable rules: deny all");
    }

    #[test]
    fn ports_reject_what_the_api_would() {
        let rule = |ports: Value| {
            spec(json!({"ingress": [{"ports": ports}]})).ingress.unwrap()[0].ports.clone().unwrap()
        };
        let tcp = Protocol::Tcp;
        assert_eq!(
            rule(json!([{"port": 80}, {"port": 8000, "endPort": 8100, "protocol": "UDP"}])),
            [
                PortSpec::Range { protocol: tcp, first: 80, last: 80 },
                PortSpec::Range { protocol: Protocol::Udp, first: 8000, last: 8100 }
            ]
        );
        assert_eq!(
            rule(json!([{"protocol": "SCTP"}, {"port": "http"}])),
            [
                PortSpec::Range { protocol: Protocol::Sctp, first: 0, last: 65535 },
                PortSpec::Named { protocol: tcp, name: "http".into() }
            ]
        );
        let huge: Value = serde_json::from_str("99999999999999999999").unwrap();
        let hostile = json!([
            {"port": 0}, {"port": -1}, {"port": 65536}, {"port": huge}, {"port": 1e3},
            {"port": 80.5}, {"port": 90, "endPort": 80}, {"port": 90, "endPort": 70000},
            {"port": "http", "endPort": 90}, {"endPort": 90}, {"port": ""},
            {"port": 80, "protocol": "tcp"}, {"port": 80, "protocol": "ICMP"},
            {"port": 80, "protocol": 6}, {"port": true}, "80", 80
        ]);
        assert_eq!(rule(hostile), [], "none of these can be trusted");
    }

    #[test]
    fn peers_read_selectors_and_blocks_strictly() {
        let peers = |from: Value| {
            spec(json!({"ingress": [{"from": from}]})).ingress.unwrap()[0].peers.clone().unwrap()
        };
        let got = peers(json!([
            {"podSelector": {"matchLabels": {"app": "web"}}},
            {"namespaceSelector": {}},
            {"namespaceSelector": {"matchLabels": {"t": "a"}}, "podSelector": {}},
            {"ipBlock": {"cidr": "10.0.0.9/8", "except": ["10.1.0.0/16"]}},
        ]));
        assert_eq!(got.len(), 4);
        assert!(matches!(&got[0], PeerSpec::Pods { namespaces: None, pods } if !pods.is_empty()));
        assert!(matches!(&got[1], PeerSpec::Pods { namespaces: Some(n), pods }
            if n.is_empty() && pods.is_empty()));
        assert_eq!(
            got[3],
            PeerSpec::Block {
                net: "10.0.0.0/8".parse().unwrap(),
                except: vec!["10.1.0.0/16".parse().unwrap()]
            }
        );
        let hostile = json!([
            {"ipBlock": {"cidr": "10.0.0.0/33"}},
            {"ipBlock": {"cidr": "not a cidr"}},
            {"ipBlock": {"cidr": "fd00::/8"}},
            {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16", "bogus"]}},
            {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["fd00::/64"]}},
            {"ipBlock": {"cidr": "10.0.0.0/8", "except": "10.1.0.0/16"}},
            {"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}},
            {"podSelector": {"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}},
            {"podSelector": {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["x", 5]}]}},
            {"podSelector": {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": []}]}},
            {"podSelector": {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}},
            {"podSelector": {"matchExpressions": [{"operator": "Exists"}]}},
            {"podSelector": {"matchLabels": {"a": 1}}},
            {"podSelector": "app=web"},
            {"namespaceSelector": {"matchExpressions": {"key": "a"}}},
            {},
        ]);
        assert_eq!(peers(hostile), [], "every one of these is unreadable");
    }

    #[test]
    fn an_unreadable_pod_selector_selects_all_and_allows_nothing() {
        let p = spec(json!({"podSelector": {"matchLabels": {"app": ["x"]}}, "ingress": [{}]}));
        assert_eq!(p.pod_selector, None);
        let p = spec(json!({"ingress": [{}]}));
        assert_eq!(p.pod_selector, Some(LabelSelector::default()), "absent: every pod");
    }
}
