//! A container's environment as the kubelet builds it: `envFrom` ConfigMaps and Secrets, then
//! `env` with values, field references, resource references and ConfigMap/Secret keys, then
//! the Services' variables ([`super::service_env`]) for names not set, and `$(VAR)` references
//! expanded in values, command and args.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::error::NodeError;
use crate::kube::Kube;

/// What field references can see besides the pod itself.
pub struct PodFacts<'a> {
    pub pod: &'a Pod,
    pub pod_ip: Option<IpAddr>,
    pub host_ip: &'a str,
}

/// Where environment values come from besides the pod: ConfigMaps and Secrets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    ConfigMap,
    Secret,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::ConfigMap => "configmap",
            Source::Secret => "secret",
        }
    }
}

/// The string data of a ConfigMap or (decoded) Secret, if it exists.
async fn data_of(
    kube: &Kube,
    ns: &str,
    source: Source,
    name: &str,
) -> Result<Option<BTreeMap<String, String>>, NodeError> {
    let failed = |e| NodeError::env(format!("reading {} {name:?}: {e}", source.name()));
    Ok(match source {
        Source::ConfigMap => {
            let cm = kube.get::<ConfigMap>(Some(ns), name).await.map_err(failed)?;
            cm.map(|cm| cm.data.unwrap_or_default())
        }
        Source::Secret => {
            let secret = kube.get::<Secret>(Some(ns), name).await.map_err(failed)?;
            secret.map(|s| {
                s.data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                    .collect()
            })
        }
    })
}

/// The pod's own metadata fields both environment variables and downward API volumes may
/// show: name, namespace, uid and one label or annotation (`metadata.labels['key']`).
pub(super) fn metadata_field(meta: &ObjectMeta, path: &str) -> Option<String> {
    let indexed = |map: &Option<BTreeMap<String, String>>, rest: &str| -> Option<String> {
        let key = rest.strip_prefix("['")?.strip_suffix("']")?;
        Some(map.as_ref().and_then(|m| m.get(key)).cloned().unwrap_or_default())
    };
    match path {
        "metadata.name" => Some(meta.name.clone().unwrap_or_default()),
        "metadata.namespace" => Some(meta.namespace.clone().unwrap_or_default()),
        "metadata.uid" => Some(meta.uid.clone().unwrap_or_default()),
        p => match p.split_once('[') {
            Some(("metadata.labels", rest)) => indexed(&meta.labels, &format!("[{rest}")),
            Some(("metadata.annotations", rest)) => indexed(&meta.annotations, &format!("[{rest}")),
            _ => None,
        },
    }
}

fn field(facts: &PodFacts, path: &str) -> Result<String, NodeError> {
    let spec = facts.pod.spec.as_ref();
    Ok(match path {
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => {
            spec.and_then(|s| s.service_account_name.clone()).unwrap_or_default()
        }
        "status.podIP" | "status.podIPs" => facts.pod_ip.map(|i| i.to_string()).unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => facts.host_ip.to_owned(),
        p => metadata_field(&facts.pod.metadata, p)
            .ok_or_else(|| NodeError::env(format!("unsupported fieldRef {path:?}")))?,
    })
}

/// Expands `$(NAME)` from `vars`; `$$(` stands for a literal `$(`; unknown names stay as is.
pub fn expand(s: &str, vars: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(escaped) = after.strip_prefix("$(") {
            out.push_str("$(");
            rest = escaped;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match vars.get(name) {
                Some(v) => out.push_str(v),
                None => out.push_str(&rest[i..i + 3 + end]),
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// A `resourceFieldRef` value: the container's own request or limit, as written.
fn resource(c: &Container, res: &str) -> String {
    let (section, what) = res.split_once('.').unwrap_or(("", res));
    let resources = c.resources.as_ref();
    let map = match section {
        "limits" => resources.and_then(|r| r.limits.as_ref()),
        "requests" => resources.and_then(|r| r.requests.as_ref()),
        _ => None,
    };
    map.and_then(|m| m.get(what)).map(|q| q.0.clone()).unwrap_or_default()
}

/// The container's environment, in order.
pub async fn build(
    kube: &Kube,
    facts: &PodFacts<'_>,
    c: &Container,
) -> Result<Vec<(String, String)>, NodeError> {
    let ns = facts.pod.metadata.namespace.as_deref().unwrap_or("default");
    let services = super::service_env::for_pod(kube, facts.pod).await?;
    let mut out: Vec<(String, String)> = Vec::new();
    let set = |out: &mut Vec<(String, String)>, k: String, v: String| {
        out.retain(|(n, _)| *n != k);
        out.push((k, v));
    };
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or_default();
        let sources = [
            from.config_map_ref.as_ref().map(|r| (Source::ConfigMap, &r.name, r.optional)),
            from.secret_ref.as_ref().map(|r| (Source::Secret, &r.name, r.optional)),
        ];
        for (source, name, optional) in sources.into_iter().flatten() {
            match data_of(kube, ns, source, name).await? {
                // A BTreeMap: keys in order, as the kubelet sorts them.
                Some(data) => {
                    for (k, v) in data {
                        set(&mut out, format!("{prefix}{k}"), v);
                    }
                }
                None if optional == Some(true) => {}
                None => {
                    return Err(NodeError::env(format!("{} \"{name}\" not found", source.name())));
                }
            }
        }
    }
    for e in c.env.iter().flatten() {
        let name = &e.name;
        let value = match &e.value_from {
            None => {
                let vars: HashMap<String, String> = services
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .chain(out.iter().cloned())
                    .collect();
                expand(e.value.as_deref().unwrap_or_default(), &vars)
            }
            Some(from) => {
                if let Some(f) = &from.field_ref {
                    field(facts, &f.field_path)?
                } else if let Some(r) = &from.resource_field_ref {
                    resource(c, &r.resource)
                } else {
                    let key_refs = [
                        from.config_map_key_ref
                            .as_ref()
                            .map(|r| (Source::ConfigMap, &r.name, &r.key, r.optional)),
                        from.secret_key_ref
                            .as_ref()
                            .map(|r| (Source::Secret, &r.name, &r.key, r.optional)),
                    ];
                    let mut found = None;
                    for (source, obj_name, key, optional) in key_refs.into_iter().flatten() {
                        let optional = optional == Some(true);
                        let value = match data_of(kube, ns, source, obj_name).await? {
                            Some(mut data) => data.remove(key),
                            None if optional => None,
                            None => {
                                return Err(NodeError::env(format!(
                                    "{} \"{obj_name}\" not found",
                                    source.name()
                                )));
                            }
                        };
                        match value {
                            Some(v) => found = Some(Some(v)),
                            None if optional => found = Some(None),
                            None => {
                                return Err(NodeError::env(format!(
                                    "couldn't find key {key} in {} {ns}/{obj_name}",
                                    source.name()
                                )));
                            }
                        }
                    }
                    match found {
                        Some(Some(v)) => v,
                        Some(None) => continue,
                        None => {
                            return Err(NodeError::env(format!(
                                "env {name}: unsupported valueFrom"
                            )));
                        }
                    }
                }
            }
        };
        set(&mut out, name.clone(), value);
    }
    // Service variables come last, for names the container did not set itself.
    for (k, v) in services {
        if !out.iter().any(|(n, _)| *n == k) {
            out.push((k, v));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_like_the_kubelet() {
        let vars: HashMap<String, String> =
            [("A".to_string(), "1".to_string()), ("B".to_string(), "two".to_string())].into();
        assert_eq!(expand("$(A)-$(B)", &vars), "1-two");
        assert_eq!(expand("$$(A) $(C) $ $(", &vars), "$(A) $(C) $ $(");
        assert_eq!(expand("x$(A", &vars), "x$(A");
    }

    #[test]
    fn field_references() {
        let pod: Pod = serde_yaml::from_str(
            "{metadata: {name: p, namespace: n, labels: {app: web}}, \
              spec: {nodeName: node-a, containers: []}}",
        )
        .unwrap();
        let facts = PodFacts { pod: &pod, pod_ip: Some([10, 0, 0, 5].into()), host_ip: "1.2.3.4" };
        assert_eq!(field(&facts, "metadata.name").unwrap(), "p");
        assert_eq!(field(&facts, "status.podIP").unwrap(), "10.0.0.5");
        assert_eq!(field(&facts, "metadata.labels['app']").unwrap(), "web");
        assert_eq!(field(&facts, "metadata.labels['none']").unwrap(), "");
        assert_eq!(field(&facts, "spec.nodeName").unwrap(), "node-a");
        assert!(field(&facts, "spec.containers").is_err());
    }

    #[test]
    fn resource_references_read_the_containers_own_resources() {
        let c: Container =
            serde_yaml::from_str("{name: c, resources: {limits: {memory: 64Mi}}}").unwrap();
        assert_eq!(resource(&c, "limits.memory"), "64Mi");
        assert_eq!(resource(&c, "requests.cpu"), "");
    }
}
