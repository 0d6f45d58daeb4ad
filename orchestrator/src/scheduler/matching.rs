//! Matching rules shared by plugins and controllers: tolerations against taints, node selector
//! terms against nodes, label selectors from their API form.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Node, NodeSelectorRequirement, NodeSelectorTerm, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as metav1;

use crate::api::selector::LabelSelector;

/// Whether `t` tolerates `taint` (Kubernetes' ToleratesTaint).
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(e) = t.effect.as_deref().filter(|e| !e.is_empty())
        && e != taint.effect
    {
        return false;
    }
    let key = t.key.as_deref().unwrap_or("");
    let exists = t.operator.as_deref() == Some("Exists");
    if key.is_empty() {
        return exists;
    }
    if key != taint.key {
        return false;
    }
    exists || t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
}

pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

fn requirement(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => !value.is_some_and(|v| values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(bound)) = (
                value.and_then(|v| v.parse::<i64>().ok()),
                values.first().and_then(|b| b.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if r.operator == "Gt" { v > bound } else { v < bound }
        }
        _ => false,
    }
}

/// One node selector term: all its expressions (on labels) and fields (metadata.name) hold.
/// An empty term matches nothing, as in Kubernetes.
pub fn term_matches(
    term: &NodeSelectorTerm,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs.iter().all(|r| requirement(r, labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| {
            let v = (r.key == "metadata.name").then_some(name);
            requirement(r, v)
        })
}

pub fn node_labels(node: &Node) -> BTreeMap<String, String> {
    node.metadata.labels.clone().unwrap_or_default()
}

/// The API form of a label selector as a matcher; `None` when it cannot be parsed (matches
/// nothing).
pub fn selector(s: &metav1::LabelSelector) -> Option<LabelSelector> {
    let v = serde_json::to_value(s).ok()?;
    LabelSelector::from_object(&v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: Some(value.into()),
            effect: effect.into(),
            time_added: None,
        }
    }

    fn tol(key: &str, op: &str, value: &str, effect: &str) -> Toleration {
        Toleration {
            key: Some(key.into()).filter(|k: &String| !k.is_empty()),
            operator: Some(op.into()),
            value: Some(value.into()).filter(|v: &String| !v.is_empty()),
            effect: Some(effect.into()).filter(|e: &String| !e.is_empty()),
            toleration_seconds: None,
        }
    }

    #[test]
    fn tolerations_follow_kubernetes_rules() {
        let t = taint("dedicated", "gpu", "NoSchedule");
        assert!(tolerates(&tol("dedicated", "Equal", "gpu", "NoSchedule"), &t));
        assert!(tolerates(&tol("dedicated", "Equal", "gpu", ""), &t), "empty effect: all");
        assert!(tolerates(&tol("dedicated", "Exists", "", ""), &t));
        assert!(tolerates(&tol("", "Exists", "", ""), &t), "empty key + Exists: everything");
        assert!(!tolerates(&tol("dedicated", "Equal", "cpu", "NoSchedule"), &t));
        assert!(!tolerates(&tol("dedicated", "Equal", "gpu", "NoExecute"), &t));
        assert!(!tolerates(&tol("other", "Exists", "", ""), &t));
    }

    #[test]
    fn node_selector_terms() {
        let labels: BTreeMap<String, String> =
            [("zone".to_owned(), "a".to_owned()), ("cores".to_owned(), "8".to_owned())].into();
        let req = |key: &str, op: &str, values: &[&str]| NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|s| s.to_string()).collect()),
        };
        let term = |e: Vec<NodeSelectorRequirement>, f: Vec<NodeSelectorRequirement>| {
            NodeSelectorTerm { match_expressions: Some(e), match_fields: Some(f) }
        };
        assert!(term_matches(&term(vec![req("zone", "In", &["a", "b"])], vec![]), "n1", &labels));
        assert!(!term_matches(&term(vec![req("zone", "NotIn", &["a"])], vec![]), "n1", &labels));
        assert!(term_matches(&term(vec![req("cores", "Gt", &["4"])], vec![]), "n1", &labels));
        assert!(!term_matches(&term(vec![req("cores", "Lt", &["4"])], vec![]), "n1", &labels));
        assert!(term_matches(&term(vec![req("gpu", "DoesNotExist", &[])], vec![]), "n1", &labels));
        assert!(term_matches(
            &term(vec![], vec![req("metadata.name", "In", &["n1"])]),
            "n1",
            &labels
        ));
        assert!(!term_matches(
            &term(vec![], vec![req("metadata.name", "In", &["n1"])]),
            "n2",
            &labels
        ));
        assert!(!term_matches(&term(vec![], vec![]), "n1", &labels), "empty term");
    }
}
