//! ResourceQuota admission: a new object is charged to every quota of its namespace that
//! tracks what it uses, by a compare-and-swap on each quota's `status.used`, so two creates
//! racing for the last unit never both get it. A charge that does not fit is refused (403)
//! and nothing is stored; the quota controller later recounts from what exists.

use std::collections::HashSet;

use serde_json::Value;

use super::retry::Retry;
use super::write::How;
use super::{Api, key};
use crate::api::error::ApiError;
use crate::api::quota;
use crate::api::request::{Target, WriteOptions};
use crate::api::resources::{self, ResourceKind, Subresource};

/// "pods" or "deployments.apps", as an admission refusal names a resource.
fn qualified(kind: &ResourceKind) -> String {
    if kind.group.is_empty() {
        kind.plural.to_owned()
    } else {
        format!("{}.{}", kind.plural, kind.group)
    }
}

impl Api {
    /// Charges `obj`, about to be created in `ns`, to the quotas there (checks only when
    /// `dry_run`).
    pub(super) async fn charge_quotas(
        &self,
        kind: &ResourceKind,
        obj: &Value,
        ns: &str,
        dry_run: bool,
    ) -> Result<(), ApiError> {
        let usage = quota::usage_of(kind, obj);
        self.charge(kind, obj, ns, usage, dry_run, true).await
    }

    /// Charges what an update of `current` to `new` adds (a Service becoming a NodePort, a
    /// claim growing); what it frees the controller gives back.
    pub(super) async fn charge_quota_growth(
        &self,
        kind: &ResourceKind,
        current: &Value,
        new: &Value,
        dry_run: bool,
    ) -> Result<(), ApiError> {
        let Some(ns) = crate::api::meta::namespace(new) else { return Ok(()) };
        let before = quota::usage_of(kind, current);
        let growth: quota::Usage = quota::usage_of(kind, new)
            .into_iter()
            .filter(|(r, amount)| *amount > before.get(r).copied().unwrap_or(0))
            .map(|(r, amount)| {
                let was = before.get(&r).copied().unwrap_or(0);
                (r, amount - was)
            })
            .collect();
        self.charge(kind, new, ns, growth, dry_run, false).await
    }

    async fn charge(
        &self,
        kind: &ResourceKind,
        obj: &Value,
        ns: &str,
        usage: quota::Usage,
        dry_run: bool,
        creating: bool,
    ) -> Result<(), ApiError> {
        if usage.is_empty() {
            return Ok(());
        }
        let quotas = resources::find("", "v1", "resourcequotas")
            .ok_or_else(|| ApiError::internal("the resourcequotas resource is missing"))?;
        let name = obj["metadata"]["name"].as_str().unwrap_or("");
        let what = format!("{} \"{name}\"", qualified(kind));
        let opts =
            WriteOptions { field_manager: Some("kube-apiserver".into()), ..Default::default() };
        let how = How { sub: Some(Subresource::Status), record: true };
        let mut charged = HashSet::new();
        let mut retry = Retry::default();
        'attempt: loop {
            // Every quota is checked before any is charged: a refusal charges none.
            let mut writes = Vec::new();
            for (q, rev) in self.load_all(quotas, ns).await? {
                let qname = q["metadata"]["name"].as_str().unwrap_or("").to_owned();
                if charged.contains(&qname) || !quota::governs(&q, kind, obj) {
                    continue;
                }
                if let Some(used) = quota::charge(&q, kind, obj, &usage, &what)? {
                    writes.push((q, rev, used, qname));
                }
            }
            if dry_run || writes.is_empty() {
                return Ok(());
            }
            // A create that will fail as a duplicate charges nothing.
            if creating && matches!(self.store.get(&key(kind, Some(ns), name)).await, Ok(Some(_))) {
                return Err(ApiError::already_exists(kind, name));
            }
            for (q, rev, used, qname) in writes {
                let mut new = q.clone();
                new["status"]["used"] = used;
                let t = Target {
                    kind: quotas,
                    namespace: Some(ns.to_owned()),
                    name: Some(qname.clone()),
                    subresource: Some(Subresource::Status),
                };
                // Boxed: a quota's status write is itself an update (one that charges nothing).
                match Box::pin(self.store_update(&t, &q, rev, new, &opts, how)).await {
                    Ok(_) => {
                        charged.insert(qname);
                    }
                    // Another write to this quota came first: check again against it.
                    Err(e) if retry.again(&e).await => continue 'attempt,
                    Err(e) => return Err(e),
                }
            }
            return Ok(());
        }
    }
}
