//! A container's environment as the kubelet builds it: `envFrom` ConfigMaps and Secrets, then
//! `env` with values, field references, resource references and ConfigMap/Secret keys, and
//! `$(VAR)` references expanded in values, command and args.

use std::collections::HashMap;
use std::net::IpAddr;

use base64::Engine;
use serde_json::Value;

use super::api::ApiClient;

/// What field references can see besides the pod itself.
pub struct PodFacts<'a> {
    pub pod: &'a Value,
    pub pod_ip: Option<IpAddr>,
    pub host_ip: &'a str,
}

async fn object(
    api: &ApiClient,
    ns: &str,
    kind: &str,
    name: &str,
) -> Result<Option<Value>, String> {
    let r = api
        .get(&format!("/api/v1/namespaces/{ns}/{kind}s/{name}"))
        .await
        .map_err(|e| e.to_string())?;
    match r.status {
        200 => Ok(Some(r.json())),
        404 => Ok(None),
        s => Err(format!("reading {kind} {name:?}: HTTP {s}")),
    }
}

/// The string data of a ConfigMap or (decoded) Secret.
fn data_of(kind: &str, obj: &Value) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for (k, v) in obj["data"].as_object().into_iter().flatten() {
        let s = v.as_str().unwrap_or_default();
        let value = if kind == "secret" {
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        } else {
            s.to_owned()
        };
        out.insert(k.clone(), value);
    }
    out
}

fn field(facts: &PodFacts, path: &str) -> Result<String, String> {
    let pod = facts.pod;
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let indexed = |map: &str, rest: &str| -> Option<String> {
        let key = rest.strip_prefix("['")?.strip_suffix("']")?;
        Some(s(&pod["metadata"][map][key]))
    };
    Ok(match path {
        "metadata.name" => s(&pod["metadata"]["name"]),
        "metadata.namespace" => s(&pod["metadata"]["namespace"]),
        "metadata.uid" => s(&pod["metadata"]["uid"]),
        "spec.nodeName" => s(&pod["spec"]["nodeName"]),
        "spec.serviceAccountName" => s(&pod["spec"]["serviceAccountName"]),
        "status.podIP" | "status.podIPs" => facts.pod_ip.map(|i| i.to_string()).unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => facts.host_ip.to_owned(),
        p => match p.split_once('[') {
            Some(("metadata.labels", rest)) => indexed("labels", &format!("[{rest}"))
                .ok_or_else(|| format!("unsupported fieldRef {p:?}"))?,
            Some(("metadata.annotations", rest)) => indexed("annotations", &format!("[{rest}"))
                .ok_or_else(|| format!("unsupported fieldRef {p:?}"))?,
            _ => return Err(format!("unsupported fieldRef {p:?}")),
        },
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

/// The container's environment, in order.
pub async fn build(
    api: &ApiClient,
    facts: &PodFacts<'_>,
    c: &Value,
) -> Result<Vec<(String, String)>, String> {
    let ns = facts.pod["metadata"]["namespace"].as_str().unwrap_or("default");
    let mut out: Vec<(String, String)> = Vec::new();
    let set = |out: &mut Vec<(String, String)>, k: String, v: String| {
        out.retain(|(n, _)| *n != k);
        out.push((k, v));
    };
    for from in c["envFrom"].as_array().into_iter().flatten() {
        let prefix = from["prefix"].as_str().unwrap_or_default();
        for kind in ["configMap", "secret"] {
            let source = &from[format!("{kind}Ref")];
            if source.is_null() {
                continue;
            }
            let name = source["name"].as_str().unwrap_or_default();
            let api_kind = kind.to_lowercase();
            match object(api, ns, &api_kind, name).await? {
                Some(obj) => {
                    let mut pairs: Vec<_> = data_of(&api_kind, &obj).into_iter().collect();
                    pairs.sort();
                    for (k, v) in pairs {
                        set(&mut out, format!("{prefix}{k}"), v);
                    }
                }
                None if source["optional"].as_bool() == Some(true) => {}
                None => return Err(format!("{api_kind} \"{name}\" not found")),
            }
        }
    }
    for e in c["env"].as_array().into_iter().flatten() {
        let Some(name) = e["name"].as_str() else { continue };
        let from = &e["valueFrom"];
        let value = if from.is_null() {
            let vars: HashMap<String, String> = out.iter().cloned().collect();
            expand(e["value"].as_str().unwrap_or_default(), &vars)
        } else if let Some(path) = from["fieldRef"]["fieldPath"].as_str() {
            field(facts, path)?
        } else if let Some(res) = from["resourceFieldRef"]["resource"].as_str() {
            let (section, what) = res.split_once('.').unwrap_or(("", res));
            let v = &c["resources"][section][what];
            v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())
        } else {
            let mut found = None;
            for (key_ref, kind) in [("configMapKeyRef", "configmap"), ("secretKeyRef", "secret")] {
                let r = &from[key_ref];
                if r.is_null() {
                    continue;
                }
                let (obj_name, key) =
                    (r["name"].as_str().unwrap_or_default(), r["key"].as_str().unwrap_or_default());
                let optional = r["optional"].as_bool() == Some(true);
                let value = match object(api, ns, kind, obj_name).await? {
                    Some(obj) => data_of(kind, &obj).remove(key),
                    None if optional => None,
                    None => return Err(format!("{kind} \"{obj_name}\" not found")),
                };
                match value {
                    Some(v) => found = Some(Some(v)),
                    None if optional => found = Some(None),
                    None => {
                        return Err(format!("couldn't find key {key} in {kind} {ns}/{obj_name}"));
                    }
                }
            }
            match found {
                Some(Some(v)) => v,
                Some(None) => continue,
                None => return Err(format!("env {name}: unsupported valueFrom")),
            }
        };
        set(&mut out, name.to_owned(), value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        let pod = json!({"metadata": {"name": "p", "namespace": "n", "labels": {"app": "web"}},
                         "spec": {"nodeName": "node-a"}});
        let facts = PodFacts { pod: &pod, pod_ip: Some([10, 0, 0, 5].into()), host_ip: "1.2.3.4" };
        assert_eq!(field(&facts, "metadata.name").unwrap(), "p");
        assert_eq!(field(&facts, "status.podIP").unwrap(), "10.0.0.5");
        assert_eq!(field(&facts, "metadata.labels['app']").unwrap(), "web");
        assert_eq!(field(&facts, "spec.nodeName").unwrap(), "node-a");
        assert!(field(&facts, "spec.containers").is_err());
    }
}
