//! `pods/ephemeralcontainers` (`kubectl debug`): the only way to change a pod's containers
//! after it is made, and only by adding ephemeral ones. Kubernetes' rules: the list only
//! grows, entries already there never change, a new one needs a unique name and an image,
//! names an existing target if it names one, and has no ports, probes, lifecycle hooks or
//! resources (ephemeral containers get no guarantees).

use serde_json::Value;

use super::subresource::proposed;
use super::write::How;
use super::{Api, ApiResponse};
use crate::api::error::{ApiError, Cause};
use crate::api::patch;
use crate::api::request::{Operation, PatchType, Target};

const FIELD: &str = "spec.ephemeralContainers";
/// What an ephemeral container may not set.
const FORBIDDEN: [&str; 6] =
    ["ports", "livenessProbe", "readinessProbe", "startupProbe", "lifecycle", "resources"];

fn names(spec: &Value, list: &str) -> Vec<String> {
    spec[list]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect()
}

/// Why `wanted` may not replace the pod's ephemeral containers (empty: it may).
fn check(pod: &Value, wanted: &Value) -> Vec<Cause> {
    let spec = &pod["spec"];
    let before = spec["ephemeralContainers"].as_array().cloned().unwrap_or_default();
    let Some(after) = wanted.as_array() else {
        return vec![Cause::invalid(FIELD, "must be a list")];
    };
    let mut causes = Vec::new();
    if after.len() < before.len() || after.iter().zip(&before).any(|(a, b)| a != b) {
        causes.push(Cause::invalid(
            FIELD,
            "Forbidden: existing ephemeral containers may not be removed or changed",
        ));
        return causes;
    }
    let regular: Vec<String> =
        names(spec, "containers").into_iter().chain(names(spec, "initContainers")).collect();
    let mut taken: Vec<String> =
        regular.iter().cloned().chain(names(spec, "ephemeralContainers")).collect();
    for (i, c) in after.iter().enumerate().skip(before.len()) {
        let at = |f: &str| format!("{FIELD}[{i}].{f}");
        match c["name"].as_str().filter(|n| !n.is_empty()) {
            None => causes.push(Cause::required(&at("name"))),
            Some(n) if taken.iter().any(|t| t == n) => {
                causes.push(Cause::invalid(&at("name"), format!("Duplicate value: {n:?}")))
            }
            Some(n) => taken.push(n.to_owned()),
        }
        if c["image"].as_str().is_none_or(str::is_empty) {
            causes.push(Cause::required(&at("image")));
        }
        if let Some(target) = c["targetContainerName"].as_str()
            && !regular.iter().any(|r| r == target)
        {
            causes
                .push(Cause::invalid(&at("targetContainerName"), format!("Not found: {target:?}")));
        }
        for f in FORBIDDEN {
            if c.get(f).is_some_and(|v| !v.is_null() && v != &serde_json::json!({})) {
                causes.push(Cause::invalid(
                    &at(f),
                    "Forbidden: cannot be set for an Ephemeral Container",
                ));
            }
        }
    }
    causes
}

impl Api {
    pub(super) async fn write_ephemeral_containers(
        &self,
        t: &Target,
        op: Operation,
    ) -> Result<ApiResponse, ApiError> {
        let name = t.name.clone().unwrap_or_default();
        let (current, rev) = self.load(t.kind, t.namespace.as_deref(), &name).await?;
        if !matches!(op, Operation::Update { .. } | Operation::Patch { .. }) {
            return Err(ApiError::method_not_allowed(format!(
                "{} is not supported on pods/ephemeralcontainers",
                op.verb()
            )));
        }
        let (proposed, opts) = proposed(t.kind, &name, &current, rev, op, |ty, doc, p| match ty {
            PatchType::Merge => patch::merge_patch(doc, p),
            _ => patch::strategic_merge(doc, p, t.kind),
        })?;
        let wanted = match &proposed["spec"]["ephemeralContainers"] {
            Value::Null => Value::Array(Vec::new()),
            v => v.clone(),
        };
        let causes = check(&current, &wanted);
        if !causes.is_empty() {
            return Err(ApiError::invalid(t.kind, &name, causes));
        }
        let mut new = current.clone();
        new["spec"]["ephemeralContainers"] = wanted;
        if opts.dry_run {
            return Ok(ApiResponse::ok(new));
        }
        let stored = self
            .store_update(t, &current, rev, new, &opts, How { sub: None, record: true })
            .await?;
        Ok(ApiResponse::ok(stored))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_new_well_formed_containers_are_added() {
        let pod = json!({"spec": {"containers": [{"name": "app", "image": "a"}],
            "ephemeralContainers": [{"name": "dbg", "image": "b"}]}});
        let ok = json!([{"name": "dbg", "image": "b"}, {"name": "dbg2", "image": "b", "targetContainerName": "app"}]);
        assert!(check(&pod, &ok).is_empty());
        let removed = json!([]);
        assert_eq!(check(&pod, &removed).len(), 1);
        let changed = json!([{"name": "dbg", "image": "c"}]);
        assert_eq!(check(&pod, &changed).len(), 1);
        let bad = json!([{"name": "dbg", "image": "b"},
            {"name": "app", "ports": [{"containerPort": 80}], "targetContainerName": "nope"}]);
        let fields: Vec<String> = check(&pod, &bad).into_iter().map(|c| c.field).collect();
        assert_eq!(
            fields,
            [
                "spec.ephemeralContainers[1].name",
                "spec.ephemeralContainers[1].image",
                "spec.ephemeralContainers[1].targetContainerName",
                "spec.ephemeralContainers[1].ports",
            ]
        );
    }
}
