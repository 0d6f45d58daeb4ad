//! Discovery documents, derived from the resource table: the legacy lists (`APIVersions`,
//! `APIGroupList`, `APIResourceList`) and aggregated discovery v2 (`APIGroupDiscoveryList`).

use serde_json::{Value, json};

use super::resources::{ResourceKind, all, group_versions};

pub const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// The Kubernetes version this server speaks.
pub const MAJOR: &str = "1";
pub const MINOR: &str = "32";
pub const GIT_VERSION: &str = "v1.32.4";

pub fn version() -> Value {
    json!({
        "major": MAJOR,
        "minor": MINOR,
        "gitVersion": GIT_VERSION,
        "gitCommit": "ringfence",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": concat!("ringfence ", env!("CARGO_PKG_VERSION")),
        "compiler": "rustc",
        "platform": "linux/amd64",
    })
}

fn kinds_in(group: &str, version: &str) -> impl Iterator<Item = &'static ResourceKind> {
    all().into_iter().filter(move |k| k.group == group && k.version == version)
}

pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": server_address }],
    })
}

pub fn api_group_list() -> Value {
    // A group's versions in table order, the first preferred (autoscaling: v2, then v1).
    let mut groups: Vec<Value> = Vec::new();
    for (g, v) in group_versions().into_iter().filter(|(g, _)| !g.is_empty()) {
        let gv = json!({ "groupVersion": format!("{g}/{v}"), "version": v });
        match groups.iter_mut().find(|x| x["name"] == g) {
            Some(group) => {
                if let Some(vs) = group["versions"].as_array_mut() {
                    vs.push(gv);
                }
            }
            None => {
                groups.push(json!({ "name": g, "versions": [gv.clone()], "preferredVersion": gv }))
            }
        }
    }
    json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
}

/// `APIResourceList` for one group/version, or None if not served.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for k in kinds_in(group, version) {
        resources.push(json!({
            "name": k.plural,
            "singularName": k.singular,
            "namespaced": k.namespaced,
            "kind": k.kind,
            "verbs": k.verbs(),
            "shortNames": k.short_names,
            "categories": k.categories,
        }));
        for sub in k.subresources {
            let ((g, v, kind), verbs) = sub.discovery(k);
            let mut r = json!({
                "name": format!("{}/{}", k.plural, sub.name()),
                "singularName": "",
                "namespaced": k.namespaced,
                "kind": kind,
                "verbs": verbs,
            });
            if (g, v) != (k.group, k.version) {
                r["group"] = json!(g);
                r["version"] = json!(v);
            }
            resources.push(r);
        }
    }
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() { version.to_owned() } else { format!("{group}/{version}") };
    Some(
        json!({ "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources }),
    )
}

fn aggregated_group(group: &str, versions: &[&str]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| {
            let resources: Vec<Value> = kinds_in(group, v)
                .map(|k| {
                    let subs: Vec<Value> = k
                        .subresources
                        .iter()
                        .map(|s| {
                            let ((g, v, kind), verbs) = s.discovery(k);
                            json!({
                                "subresource": s.name(),
                                "responseKind": { "group": g, "version": v, "kind": kind },
                                "verbs": verbs,
                            })
                        })
                        .collect();
                    let mut r = json!({
                        "resource": k.plural,
                        "responseKind": { "group": k.group, "version": k.version, "kind": k.kind },
                        "scope": if k.namespaced { "Namespaced" } else { "Cluster" },
                        "singularResource": k.singular,
                        "verbs": k.verbs(),
                    });
                    if !k.short_names.is_empty() {
                        r["shortNames"] = json!(k.short_names);
                    }
                    if !k.categories.is_empty() {
                        r["categories"] = json!(k.categories);
                    }
                    if !subs.is_empty() {
                        r["subresources"] = json!(subs);
                    }
                    r
                })
                .collect();
            json!({ "version": v, "resources": resources, "freshness": "Current" })
        })
        .collect();
    let mut meta = json!({ "creationTimestamp": null });
    if !group.is_empty() {
        meta["name"] = json!(group);
    }
    json!({ "metadata": meta, "versions": versions })
}

/// Aggregated discovery for `/api` (core) or `/apis` (named groups).
pub fn aggregated(core: bool) -> Value {
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for (g, v) in group_versions() {
        if g.is_empty() != core {
            continue;
        }
        match groups.iter_mut().find(|(x, _)| *x == g) {
            Some((_, vs)) => vs.push(v),
            None => groups.push((g, vec![v])),
        }
    }
    let items: Vec<Value> = groups.iter().map(|(g, vs)| aggregated_group(g, vs)).collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::resources::KINDS;

    #[test]
    fn every_kind_is_discoverable() {
        let core = aggregated(true);
        let named = aggregated(false);
        let count = |doc: &Value| -> usize {
            doc["items"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|g| g["versions"].as_array().unwrap())
                .map(|v| v["resources"].as_array().unwrap().len())
                .sum()
        };
        assert_eq!(count(&core) + count(&named), KINDS.len());
        assert!(
            resource_list("apps", "v1").unwrap()["resources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["name"] == "deployments/scale")
        );
        assert!(resource_list("apps", "v9").is_none());
    }
}
