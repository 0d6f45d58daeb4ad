//! Service node ports: every port of a NodePort or LoadBalancer Service gets a port from the
//! node-port range, unique across the cluster; a ClusterIP Service has none.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;

use serde_json::Value;

use crate::api::error::Cause;

/// Kubernetes' default `--service-node-port-range`.
pub const RANGE: RangeInclusive<u16> = 30000..=32767;

fn wants_node_ports(spec: &Value) -> bool {
    matches!(spec["type"].as_str(), Some("NodePort") | Some("LoadBalancer"))
}

/// Node ports held by `services` (all stored Services but the one being written).
pub fn in_use<'a>(services: impl Iterator<Item = &'a Value>) -> BTreeSet<u16> {
    services
        .flat_map(|s| s["spec"]["ports"].as_array().into_iter().flatten())
        .filter_map(|p| p["nodePort"].as_u64().and_then(|n| u16::try_from(n).ok()))
        .collect()
}

/// Fills in `spec.ports[*].nodePort` of `svc`: a port the user asked for must be in range and
/// free; a port the Service already had (`previous`) is kept; the rest get the lowest free port.
pub fn assign(svc: &mut Value, previous: Option<&Value>, used: &BTreeSet<u16>) -> Vec<Cause> {
    let mut causes = Vec::new();
    let wants = wants_node_ports(&svc["spec"]);
    let kept: Vec<(Value, u64)> = previous
        .filter(|p| wants_node_ports(&p["spec"]))
        .and_then(|p| p["spec"]["ports"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["port"].clone(), p["nodePort"].as_u64()?)))
        .collect();
    let Some(ports) = svc["spec"]["ports"].as_array_mut() else { return causes };
    let mut taken = used.clone();
    for (i, p) in ports.iter_mut().enumerate() {
        let field = format!("spec.ports[{i}].nodePort");
        let asked = p.get("nodePort").filter(|v| !v.is_null() && **v != 0).cloned();
        if !wants {
            if let Some(v) = asked {
                causes.push(Cause {
                    reason: "FieldValueForbidden",
                    field,
                    message: format!("Forbidden: may not be used when `type` is 'ClusterIP' ({v})"),
                });
            }
            continue;
        }
        let port = match asked {
            Some(v) => match v.as_u64().and_then(|n| u16::try_from(n).ok()) {
                Some(n) if RANGE.contains(&n) => n,
                _ => {
                    causes.push(Cause::invalid(
                        &field,
                        format!(
                            "Invalid value: {v}: provided port is not in the valid range. The range of valid ports is {}-{}",
                            RANGE.start(),
                            RANGE.end()
                        ),
                    ));
                    continue;
                }
            },
            None => match kept.iter().find(|(port, _)| *port == p["port"]) {
                Some((_, n)) => *n as u16,
                None => match RANGE.clone().find(|n| !taken.contains(n)) {
                    Some(n) => n,
                    None => {
                        causes.push(Cause::invalid(
                            &field,
                            "Invalid value: range is full".to_string(),
                        ));
                        continue;
                    }
                },
            },
        };
        if !taken.insert(port) {
            causes.push(Cause::invalid(
                &field,
                format!("Invalid value: {port}: provided port is already allocated"),
            ));
            continue;
        }
        p["nodePort"] = port.into();
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn allocates_keeps_and_refuses() {
        let used: BTreeSet<u16> = [30000].into();
        let mut svc = json!({"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 81, "nodePort": 31000}]}});
        assert!(assign(&mut svc, None, &used).is_empty());
        assert_eq!(svc["spec"]["ports"][0]["nodePort"], 30001);
        assert_eq!(svc["spec"]["ports"][1]["nodePort"], 31000);

        // An update without node ports keeps the ones the Service had.
        let mut next = json!({"spec": {"type": "NodePort", "ports": [{"port": 80}]}});
        assert!(assign(&mut next, Some(&svc), &used).is_empty());
        assert_eq!(next["spec"]["ports"][0]["nodePort"], 30001);

        let mut clash =
            json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30000}]}});
        assert_eq!(assign(&mut clash, None, &used).len(), 1);
        let mut out =
            json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}});
        assert_eq!(assign(&mut out, None, &used).len(), 1);
        let mut cip =
            json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80, "nodePort": 30500}]}});
        assert_eq!(assign(&mut cip, None, &used).len(), 1);
        let mut plain = json!({"spec": {"ports": [{"port": 80}]}});
        assert!(assign(&mut plain, None, &used).is_empty());
        assert!(plain["spec"]["ports"][0].get("nodePort").is_none());
    }
}
