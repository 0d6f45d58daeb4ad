//! RBAC: evaluating the stored Roles, ClusterRoles and their bindings, and the access reviews
//! (`kubectl auth can-i`) that ask the same question.

use serde_json::{Value, json};

use super::{Api, prefix};
use crate::api::error::ApiError;
use crate::api::request::{ApiRequest, User};
use crate::api::resources::{self, ResourceKind};
use crate::store;

pub const MASTERS: &str = "system:masters";

/// What a request does, in RBAC's terms.
#[derive(Debug, Clone, Default)]
pub struct Attributes {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    /// For non-resource requests (e.g. /version): the path.
    pub path: Option<String>,
}

fn list_has(v: &Value, want: &str) -> bool {
    v.as_array().is_some_and(|a| a.iter().any(|x| x == "*" || x == want))
}

fn rule_allows(rule: &Value, a: &Attributes) -> bool {
    if !list_has(&rule["verbs"], &a.verb) {
        return false;
    }
    if let Some(path) = &a.path {
        return rule["nonResourceURLs"].as_array().is_some_and(|urls| {
            urls.iter().filter_map(Value::as_str).any(|u| {
                u == "*" || u == path || u.strip_suffix('*').is_some_and(|p| path.starts_with(p))
            })
        });
    }
    let resource = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let names_ok = match rule["resourceNames"].as_array() {
        Some(n) if !n.is_empty() => n.iter().any(|x| x == a.name.as_str()),
        _ => true,
    };
    list_has(&rule["apiGroups"], &a.group) && list_has(&rule["resources"], &resource) && names_ok
}

fn subject_matches(s: &Value, user: &User, binding_ns: Option<&str>) -> bool {
    let name = s["name"].as_str().unwrap_or("");
    match s["kind"].as_str() {
        Some("User") => name == user.name,
        Some("Group") => user.in_group(name),
        Some("ServiceAccount") => {
            let ns = s["namespace"].as_str().or(binding_ns).unwrap_or("");
            user.name == format!("system:serviceaccount:{ns}:{name}")
        }
        _ => false,
    }
}

/// What an access review asks about: `resourceAttributes` or `nonResourceAttributes`.
fn review_attributes(spec: &Value) -> Result<Attributes, ApiError> {
    let (ra, nra) = (&spec["resourceAttributes"], &spec["nonResourceAttributes"]);
    let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
    if ra.is_object() {
        Ok(Attributes {
            verb: s(&ra["verb"]),
            group: s(&ra["group"]),
            resource: s(&ra["resource"]),
            subresource: s(&ra["subresource"]),
            namespace: s(&ra["namespace"]),
            name: s(&ra["name"]),
            path: None,
        })
    } else if nra.is_object() {
        Ok(Attributes { verb: s(&nra["verb"]), path: Some(s(&nra["path"])), ..Default::default() })
    } else {
        Err(ApiError::bad_request("spec needs resourceAttributes or nonResourceAttributes"))
    }
}

/// The user a SubjectAccessReview asks about (`spec.user`, `groups`, `uid`, `extra`).
fn subject_of(spec: &Value) -> Result<User, ApiError> {
    let name = spec["user"].as_str().unwrap_or("").to_owned();
    let groups: Vec<String> = spec["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g.as_str().map(str::to_owned))
        .collect();
    if name.is_empty() && groups.is_empty() {
        return Err(ApiError::bad_request("spec.user or spec.groups is required"));
    }
    let extra = spec["extra"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let values = v.as_array().into_iter().flatten();
            (k.clone(), values.filter_map(|x| x.as_str().map(str::to_owned)).collect())
        })
        .collect();
    Ok(User { name, uid: spec["uid"].as_str().unwrap_or("").to_owned(), groups, extra })
}

impl Api {
    async fn list_kind(
        &self,
        kind: &ResourceKind,
        ns: Option<&str>,
    ) -> Result<Vec<Value>, ApiError> {
        let list = self
            .store
            .list(&prefix(kind, ns), store::ListOptions::default())
            .await
            .map_err(|e| ApiError::from_store(e, kind, ""))?;
        Ok(list.items.iter().filter_map(|kv| serde_json::from_slice(&kv.value).ok()).collect())
    }

    /// The rules granted to `user` in `namespace` (cluster-wide ones included).
    pub async fn rules_for(&self, user: &User, namespace: &str) -> Result<Vec<Value>, ApiError> {
        let kind = |plural| {
            resources::find("rbac.authorization.k8s.io", "v1", plural)
                .ok_or_else(|| ApiError::internal("no rbac kinds"))
        };
        let mut bindings: Vec<(Value, Option<String>)> = self
            .list_kind(kind("clusterrolebindings")?, None)
            .await?
            .into_iter()
            .map(|b| (b, None))
            .collect();
        if !namespace.is_empty() {
            for b in self.list_kind(kind("rolebindings")?, Some(namespace)).await? {
                bindings.push((b, Some(namespace.to_owned())));
            }
        }
        let mut rules = Vec::new();
        for (b, ns) in bindings {
            let subjects = b["subjects"].as_array().cloned().unwrap_or_default();
            if !subjects.iter().any(|s| subject_matches(s, user, ns.as_deref())) {
                continue;
            }
            let role_name = b["roleRef"]["name"].as_str().unwrap_or("");
            let role_key = match (b["roleRef"]["kind"].as_str(), &ns) {
                (Some("ClusterRole"), _) => super::key(kind("clusterroles")?, None, role_name),
                (Some("Role"), Some(ns)) => super::key(kind("roles")?, Some(ns), role_name),
                _ => continue,
            };
            if let Ok(Some(kv)) = self.store.get(&role_key).await
                && let Ok(role) = serde_json::from_slice::<Value>(&kv.value)
            {
                rules.extend(role["rules"].as_array().cloned().unwrap_or_default());
            }
        }
        Ok(rules)
    }

    pub async fn allowed(&self, user: &User, a: &Attributes) -> Result<bool, ApiError> {
        if user.in_group(MASTERS) {
            return Ok(true);
        }
        Ok(self.rules_for(user, &a.namespace).await?.iter().any(|r| rule_allows(r, a)))
    }

    pub(super) async fn authorize_request(
        &self,
        user: &User,
        req: &ApiRequest,
    ) -> Result<(), ApiError> {
        if user.in_group(MASTERS) {
            return Ok(());
        }
        let t = &req.target;
        let a = Attributes {
            verb: req.op.verb().to_owned(),
            group: t.kind.group.to_owned(),
            resource: t.kind.plural.to_owned(),
            subresource: t.subresource.map(|s| s.name().to_owned()).unwrap_or_default(),
            namespace: t.namespace.clone().unwrap_or_default(),
            name: t.name.clone().unwrap_or_default(),
            path: None,
        };
        // Reviews about oneself are open to every authenticated user; asking about someone
        // else (SubjectAccessReview) or about a token (TokenReview) takes RBAC's permission.
        if t.kind.storage == resources::Storage::Virtual && t.kind.kind.starts_with("SelfSubject") {
            return Ok(());
        }
        if self.allowed(user, &a).await? {
            return Ok(());
        }
        let what = if a.subresource.is_empty() {
            a.resource.clone()
        } else {
            format!("{}/{}", a.resource, a.subresource)
        };
        let mut msg = format!("{what} ");
        if !a.name.is_empty() {
            msg.push_str(&format!("\"{}\" ", a.name));
        }
        msg.push_str(&format!(
            "is forbidden: User \"{}\" cannot {} resource \"{what}\" in API group \"{}\"",
            user.name, a.verb, a.group
        ));
        if a.namespace.is_empty() {
            msg.push_str(" at the cluster scope");
        } else {
            msg.push_str(&format!(" in the namespace \"{}\"", a.namespace));
        }
        Err(ApiError::forbidden(msg))
    }

    /// Answers a SelfSubjectAccessReview, SelfSubjectRulesReview or SelfSubjectReview (who
    /// am I: `kubectl auth whoami`) for `user`, a SubjectAccessReview about the user its
    /// spec names, or a TokenReview of the token it holds.
    pub(super) async fn review(
        &self,
        user: &User,
        kind: &ResourceKind,
        mut body: Value,
    ) -> Result<Value, ApiError> {
        let spec = body["spec"].clone();
        match kind.kind {
            "TokenReview" => body["status"] = self.review_token(&spec).await?,
            "SelfSubjectReview" => {
                let mut info = json!({ "username": user.name, "groups": user.groups });
                if !user.uid.is_empty() {
                    info["uid"] = json!(user.uid);
                }
                if !user.extra.is_empty() {
                    info["extra"] = json!(user.extra);
                }
                body["status"] = json!({ "userInfo": info });
            }
            "SelfSubjectAccessReview" | "SubjectAccessReview" => {
                let subject = if kind.kind == "SubjectAccessReview" {
                    subject_of(&spec)?
                } else {
                    user.clone()
                };
                let a = review_attributes(&spec)?;
                let allowed = self.allowed(&subject, &a).await?;
                body["status"] = json!({ "allowed": allowed });
                if allowed && !subject.in_group(MASTERS) {
                    body["status"]["reason"] = json!("allowed by RBAC");
                }
            }
            _ => {
                let ns = spec["namespace"].as_str().unwrap_or("");
                let rules = if user.in_group(MASTERS) {
                    vec![
                        json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}),
                        json!({"verbs": ["*"], "nonResourceURLs": ["*"]}),
                    ]
                } else {
                    self.rules_for(user, ns).await?
                };
                let (res, nonres): (Vec<Value>, Vec<Value>) =
                    rules.into_iter().partition(|r| r.get("nonResourceURLs").is_none());
                body["status"] = json!({ "resourceRules": res, "nonResourceRules": nonres, "incomplete": false });
            }
        }
        body["apiVersion"] = json!(kind.api_version());
        body["kind"] = json!(kind.kind);
        Ok(body)
    }
}
