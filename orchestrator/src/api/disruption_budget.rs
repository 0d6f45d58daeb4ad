//! PodDisruptionBudgets (policy/v1) as the API server sees them: what a valid budget is, which
//! budgets cover a pod, and what an eviction of that pod may do under its budget. The numbers
//! in a budget's status are the disruption controller's; evictions only spend them.

use serde_json::Value;

use super::error::{ApiError, Cause};
use super::selector::LabelSelector;

/// How long an eviction's entry in `status.disruptedPods` holds a disruption for a pod that
/// was not deleted after all (Kubernetes' DeletionTimeout).
pub const DISRUPTION_TIMEOUT: chrono::TimeDelta = chrono::TimeDelta::minutes(2);

/// Most evictions awaiting the controller's confirmation per budget.
const MAX_DISRUPTED_PODS: usize = 2000;

const PERCENT_FORMAT: &str = "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')";

/// An int-or-percent field of a budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntOrPercent {
    Int(i64),
    Percent(i64),
}

impl IntOrPercent {
    /// The field's value, or why it is not one.
    pub fn parse(v: &Value) -> Result<Self, String> {
        match v {
            Value::Number(n) => {
                n.as_i64().map(Self::Int).ok_or_else(|| "must be an integer".into())
            }
            Value::String(s) => s
                .strip_suffix('%')
                .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|d| d.parse().ok())
                .map(Self::Percent)
                .ok_or_else(|| PERCENT_FORMAT.into()),
            _ => Err("must be an integer or a percentage".into()),
        }
    }

    /// The count this stands for out of `total`, percentages rounded up (as Kubernetes
    /// resolves both minAvailable and maxUnavailable of budgets).
    pub fn of(self, total: i64) -> i64 {
        match self {
            Self::Int(n) => n,
            Self::Percent(p) => (p * total + 99) / 100,
        }
    }
}

/// The causes of an invalid budget.
pub fn validate(obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let spec = &obj["spec"];
    let present = |f: &str| spec.get(f).is_some_and(|v| !v.is_null());
    if present("minAvailable") && present("maxUnavailable") {
        causes.push(Cause::invalid(
            "spec",
            format!("Invalid value: {spec}: minAvailable and maxUnavailable cannot be both set"),
        ));
    }
    for field in ["minAvailable", "maxUnavailable"] {
        let Some(v) = spec.get(field).filter(|v| !v.is_null()) else { continue };
        let path = format!("spec.{field}");
        match IntOrPercent::parse(v) {
            Err(m) => causes.push(Cause::invalid(&path, format!("Invalid value: {v}: {m}"))),
            Ok(IntOrPercent::Int(n)) if n < 0 => causes.push(Cause::invalid(
                &path,
                format!("Invalid value: {n}: must be greater than or equal to 0"),
            )),
            Ok(IntOrPercent::Percent(p)) if p > 100 => causes.push(Cause::invalid(
                &path,
                format!("Invalid value: {v}: must not be greater than 100%"),
            )),
            Ok(_) => {}
        }
    }
    if let Some(sel) = spec.get("selector").filter(|s| !s.is_null())
        && let Err(e) = LabelSelector::from_object(sel)
    {
        causes.push(Cause::invalid("spec.selector", e));
    }
    match spec["unhealthyPodEvictionPolicy"].as_str() {
        None | Some("IfHealthyBudget" | "AlwaysAllow") => {}
        Some(other) => causes.push(Cause {
            reason: "FieldValueNotSupported",
            field: "spec.unhealthyPodEvictionPolicy".into(),
            message: format!(
                "Unsupported value: \"{other}\": supported values: \"AlwaysAllow\", \"IfHealthyBudget\""
            ),
        }),
    }
    causes
}

/// Whether `budget` covers a pod with `labels` (a budget without a selector covers nothing; an
/// empty selector covers every pod of its namespace, as policy/v1 defines).
pub fn covers(budget: &Value, labels: &std::collections::BTreeMap<String, String>) -> bool {
    let sel = &budget["spec"]["selector"];
    if sel.is_null() {
        return false;
    }
    LabelSelector::from_object(sel).is_ok_and(|s| s.matches(labels))
}

/// Whether a pod's Ready condition is True.
pub fn pod_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// What an eviction may do.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// Delete the pod without touching the budget; `only_this_version` makes the delete
    /// conditional on the pod's resourceVersion (an unhealthy pod must still be unhealthy).
    Delete { only_this_version: bool },
    /// Spend one of the budget's disruptions (recording the pod), then delete.
    Spend,
}

/// Pods a budget does not protect: not running yet, finished, or already going.
pub fn ignores_budgets(pod: &Value) -> bool {
    matches!(pod["status"]["phase"].as_str(), Some("Pending" | "Succeeded" | "Failed") | None)
        || !pod["metadata"]["deletionTimestamp"].is_null()
}

fn message() -> &'static str {
    "Cannot evict pod as it would violate the pod's disruption budget."
}

fn status_i64(budget: &Value, f: &str) -> i64 {
    budget["status"][f].as_i64().unwrap_or(0)
}

/// Decides the eviction of `pod` under its only `budget`.
pub fn decide(pod: &Value, budget: &Value) -> Result<Verdict, ApiError> {
    let name = budget["metadata"]["name"].as_str().unwrap_or("");
    let (current, desired) =
        (status_i64(budget, "currentHealthy"), status_i64(budget, "desiredHealthy"));
    if !pod_ready(pod) {
        let always = budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow";
        if always || (current >= desired && desired > 0) {
            return Ok(Verdict::Delete { only_this_version: true });
        }
    }
    let observed = status_i64(budget, "observedGeneration");
    if observed < budget["metadata"]["generation"].as_i64().unwrap_or(0) {
        return Err(ApiError::too_many_requests(
            message(),
            vec![budget_cause(format!(
                "The disruption budget {name} is still being processed by the server."
            ))],
        ));
    }
    let allowed = status_i64(budget, "disruptionsAllowed");
    if allowed < 0 {
        return Err(ApiError::forbidden(format!(
            "poddisruptionbudgets.policy \"{name}\" is forbidden: pdb disruptions allowed is negative"
        )));
    }
    let disrupted = budget["status"]["disruptedPods"].as_object().map_or(0, |m| m.len());
    if disrupted > MAX_DISRUPTED_PODS {
        return Err(ApiError::forbidden(format!(
            "poddisruptionbudgets.policy \"{name}\" is forbidden: DisruptedPods map too big - too many evictions not confirmed by PDB controller"
        )));
    }
    if allowed == 0 {
        return Err(ApiError::too_many_requests(
            message(),
            vec![budget_cause(format!(
                "The disruption budget {name} needs {desired} healthy pods and has {current} currently"
            ))],
        ));
    }
    Ok(Verdict::Spend)
}

fn budget_cause(message: String) -> Cause {
    Cause { reason: "DisruptionBudget", field: String::new(), message }
}

/// `budget` after one eviction of `pod` at `now`: one disruption fewer, the pod recorded so
/// that the controller does not count it healthy while it goes.
pub fn spend(budget: &mut Value, pod: &str, now: &str) {
    let allowed = status_i64(budget, "disruptionsAllowed") - 1;
    let status = &mut budget["status"];
    status["disruptionsAllowed"] = allowed.into();
    if !status["disruptedPods"].is_object() {
        status["disruptedPods"] = Value::Object(Default::default());
    }
    status["disruptedPods"][pod] = now.into();
    if allowed == 0
        && let Some(conds) = status["conditions"].as_array_mut()
    {
        for c in conds.iter_mut().filter(|c| c["type"] == "DisruptionAllowed") {
            c["status"] = "False".into();
            c["reason"] = "InsufficientPods".into();
            c["message"] = "".into();
            c["lastTransitionTime"] = now.into();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn budget(spec: Value, status: Value) -> Value {
        json!({"metadata": {"name": "b", "generation": 1}, "spec": spec, "status": status})
    }

    fn pod(ready: bool) -> Value {
        json!({"metadata": {"name": "p"}, "status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
    }

    #[test]
    fn int_or_percent() {
        assert_eq!(IntOrPercent::parse(&json!("50%")).unwrap().of(3), 2);
        assert_eq!(IntOrPercent::parse(&json!(2)).unwrap().of(10), 2);
        assert!(IntOrPercent::parse(&json!("5x")).is_err());
        assert!(IntOrPercent::parse(&json!("%")).is_err());
    }

    #[test]
    fn validation() {
        let both =
            budget(json!({"minAvailable": 1, "maxUnavailable": 1, "selector": {}}), json!({}));
        assert_eq!(validate(&both).len(), 1);
        let bad = budget(json!({"minAvailable": -1}), json!({}));
        assert_eq!(validate(&bad)[0].field, "spec.minAvailable");
        let pct = budget(json!({"maxUnavailable": "150%"}), json!({}));
        assert_eq!(validate(&pct).len(), 1);
        let ok = budget(
            json!({"minAvailable": "50%", "selector": {"matchLabels": {"a": "b"}}}),
            json!({}),
        );
        assert!(validate(&ok).is_empty());
    }

    #[test]
    fn evictions_spend_the_budget() {
        let status = json!({"observedGeneration": 1, "disruptionsAllowed": 1, "currentHealthy": 3, "desiredHealthy": 2});
        let mut b = budget(json!({"minAvailable": 2}), status);
        assert_eq!(decide(&pod(true), &b).unwrap(), Verdict::Spend);
        spend(&mut b, "p", "2026-01-01T00:00:00Z");
        let e = decide(&pod(true), &b).unwrap_err();
        assert_eq!(e.code, 429);
        assert_eq!(
            e.causes[0].message,
            "The disruption budget b needs 2 healthy pods and has 3 currently"
        );
        // An unready pod goes while the application is otherwise healthy.
        assert_eq!(decide(&pod(false), &b).unwrap(), Verdict::Delete { only_this_version: true });
        let stale = budget(json!({}), json!({"observedGeneration": 0, "disruptionsAllowed": 5}));
        assert_eq!(decide(&pod(true), &stale).unwrap_err().code, 429);
    }
}
