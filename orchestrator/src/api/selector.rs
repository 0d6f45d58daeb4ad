//! Label and field selectors: parsed from their query-string syntax into typed requirements,
//! then matched against objects.

use std::collections::BTreeMap;

use serde_json::Value;

use super::resources::ResourceKind;
use super::validation::{is_label_value, is_qualified_name};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelOp {
    Exists,
    NotExists,
    Equals(String),
    NotEquals(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Gt(i64),
    Lt(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelRequirement {
    pub key: String,
    pub op: LabelOp,
}

/// A conjunction of label requirements; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(pub Vec<LabelRequirement>);

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        let mut rest = s.trim();
        while !rest.is_empty() {
            let (req, tail) = parse_requirement(rest)?;
            reqs.push(req);
            rest = tail.trim_start();
            if let Some(t) = rest.strip_prefix(',') {
                rest = t.trim_start();
                if rest.is_empty() {
                    return Err(format!("unable to parse requirement: trailing comma in {s:?}"));
                }
            } else if !rest.is_empty() {
                return Err(format!("unable to parse requirement: unexpected {rest:?}"));
            }
        }
        Ok(Self(reqs))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| {
            let v = labels.get(&r.key);
            match &r.op {
                LabelOp::Exists => v.is_some(),
                LabelOp::NotExists => v.is_none(),
                LabelOp::Equals(x) => v == Some(x),
                LabelOp::NotEquals(x) => v != Some(x),
                LabelOp::In(xs) => v.is_some_and(|v| xs.contains(v)),
                LabelOp::NotIn(xs) => v.is_none_or(|v| !xs.contains(v)),
                LabelOp::Gt(n) => v.and_then(|v| v.parse::<i64>().ok()).is_some_and(|v| v > *n),
                LabelOp::Lt(n) => v.and_then(|v| v.parse::<i64>().ok()).is_some_and(|v| v < *n),
            }
        })
    }

    /// A workload's `spec.selector`: a `metav1.LabelSelector`, but for a
    /// ReplicationController the plain map of labels its selector is.
    pub fn of_workload(kind: &ResourceKind, sel: &Value) -> Result<Self, String> {
        if (kind.group, kind.kind) == ("", "ReplicationController") {
            if !sel.is_object() {
                return Err(format!("Invalid value: {sel}: must be a map of labels"));
            }
            return Self::from_object(&serde_json::json!({ "matchLabels": sel }));
        }
        Self::from_object(sel)
    }

    /// From a `metav1.LabelSelector` object (matchLabels, matchExpressions).
    pub fn from_object(sel: &Value) -> Result<Self, String> {
        let mut reqs = Vec::new();
        if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in m {
                let v = v.as_str().ok_or("matchLabels values must be strings")?;
                reqs.push(LabelRequirement { key: k.clone(), op: LabelOp::Equals(v.to_owned()) });
            }
        }
        for e in sel.get("matchExpressions").and_then(Value::as_array).into_iter().flatten() {
            let key = e
                .get("key")
                .and_then(Value::as_str)
                .ok_or("matchExpressions need a key")?
                .to_owned();
            let values: Vec<String> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            let op = match e.get("operator").and_then(Value::as_str) {
                Some("In") => LabelOp::In(values),
                Some("NotIn") => LabelOp::NotIn(values),
                Some("Exists") => LabelOp::Exists,
                Some("DoesNotExist") => LabelOp::NotExists,
                other => return Err(format!("{other:?} is not a valid label selector operator")),
            };
            reqs.push(LabelRequirement { key, op });
        }
        Ok(Self(reqs))
    }
}

impl std::fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|r| match &r.op {
                LabelOp::Exists => r.key.clone(),
                LabelOp::NotExists => format!("!{}", r.key),
                LabelOp::Equals(v) => format!("{}={v}", r.key),
                LabelOp::NotEquals(v) => format!("{}!={v}", r.key),
                LabelOp::In(vs) => format!("{} in ({})", r.key, vs.join(",")),
                LabelOp::NotIn(vs) => format!("{} notin ({})", r.key, vs.join(",")),
                LabelOp::Gt(n) => format!("{}>{n}", r.key),
                LabelOp::Lt(n) => format!("{}<{n}", r.key),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

fn key_end(s: &str) -> usize {
    s.find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/')))
        .unwrap_or(s.len())
}

fn check_key(key: &str) -> Result<(), String> {
    if is_qualified_name(key) {
        Ok(())
    } else {
        Err(format!("unable to parse requirement: invalid label key {key:?}"))
    }
}

fn check_value(v: &str) -> Result<String, String> {
    if is_label_value(v) {
        Ok(v.to_owned())
    } else {
        Err(format!("unable to parse requirement: invalid label value {v:?}"))
    }
}

fn parse_requirement(s: &str) -> Result<(LabelRequirement, &str), String> {
    if let Some(rest) = s.strip_prefix('!') {
        let rest = rest.trim_start();
        let end = key_end(rest);
        check_key(&rest[..end])?;
        return Ok((
            LabelRequirement { key: rest[..end].to_owned(), op: LabelOp::NotExists },
            &rest[end..],
        ));
    }
    let end = key_end(s);
    let key = &s[..end];
    check_key(key)?;
    let rest = s[end..].trim_start();
    let value_end = |r: &str| r.find([',', ' ']).unwrap_or(r.len());
    let (op, tail): (LabelOp, &str) = if let Some(r) = rest.strip_prefix("!=") {
        let r = r.trim_start();
        let e = value_end(r);
        (LabelOp::NotEquals(check_value(&r[..e])?), &r[e..])
    } else if let Some(r) = rest.strip_prefix("==").or_else(|| rest.strip_prefix('=')) {
        let r = r.trim_start();
        let e = value_end(r);
        (LabelOp::Equals(check_value(&r[..e])?), &r[e..])
    } else if let Some(r) = rest.strip_prefix('>').or_else(|| rest.strip_prefix('<')) {
        let r2 = r.trim_start();
        let e = value_end(r2);
        let n: i64 = r2[..e].parse().map_err(|_| {
            format!("unable to parse requirement: {:?} is not an integer", &r2[..e])
        })?;
        (if rest.starts_with('>') { LabelOp::Gt(n) } else { LabelOp::Lt(n) }, &r2[e..])
    } else if let Some(r) = rest.strip_prefix("notin").or_else(|| rest.strip_prefix("in")) {
        let not = rest.starts_with("notin");
        let r = r.trim_start();
        let inner = r
            .strip_prefix('(')
            .ok_or_else(|| format!("unable to parse requirement: expected '(' after {key} in"))?;
        let close = inner.find(')').ok_or("unable to parse requirement: missing ')'")?;
        let values = inner[..close]
            .split(',')
            .map(|v| check_value(v.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        (if not { LabelOp::NotIn(values) } else { LabelOp::In(values) }, &inner[close + 1..])
    } else if rest.is_empty() || rest.starts_with(',') {
        (LabelOp::Exists, rest)
    } else {
        return Err(format!("unable to parse requirement: unexpected {rest:?} after {key:?}"));
    };
    Ok((LabelRequirement { key: key.to_owned(), op }, tail))
}

/// `field=value` and `field!=value` terms over the fields a resource indexes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(pub Vec<(String, bool, String)>);

impl FieldSelector {
    pub fn parse(s: &str, kind: &ResourceKind) -> Result<Self, String> {
        let mut terms = Vec::new();
        for term in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, eq, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (f, true, v)
            } else {
                return Err(format!("invalid selector: '{term}'; can't understand '{term}'"));
            };
            let field = field.trim();
            if !supported_field(kind, field) {
                return Err(format!("field label not supported: {field}"));
            }
            terms.push((field.to_owned(), eq, value.trim().to_owned()));
        }
        Ok(Self(terms))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(field, eq, value)| (field_value(obj, field) == *value) == *eq)
    }

    /// The name this selector pins (`metadata.name=x`), if any.
    pub fn name(&self) -> Option<&str> {
        self.0.iter().find(|(f, eq, _)| f == "metadata.name" && *eq).map(|(_, _, v)| v.as_str())
    }
}

fn supported_field(kind: &ResourceKind, field: &str) -> bool {
    if matches!(field, "metadata.name" | "metadata.namespace") {
        return true;
    }
    let extra: &[&str] = match (kind.group, kind.kind) {
        ("", "Pod") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        ("", "Event") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("", "Secret") => &["type"],
        ("", "Node") => &["spec.unschedulable"],
        ("", "Namespace") => &["status.phase"],
        ("batch", "Job") => &["status.successful"],
        ("apps", "ReplicaSet") | ("", "ReplicationController") => &["status.replicas"],
        _ => &[],
    };
    extra.contains(&field)
}

/// A field's value as a selector sees it: strings as-is, others in JSON form, absent as "".
pub fn field_value(obj: &Value, field: &str) -> String {
    let v = if field == "source" {
        obj.pointer("/source/component")
    } else {
        obj.pointer(&format!("/{}", field.replace('.', "/")))
    };
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => match field {
            "spec.hostNetwork" | "spec.unschedulable" => "false".into(),
            "status.successful" | "status.replicas" => "0".into(),
            _ => String::new(),
        },
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn label_selectors_parse_and_match() {
        let s =
            LabelSelector::parse("app=web, tier!=db,env in (prod, staging),!legacy,team").unwrap();
        assert_eq!(s.0.len(), 5);
        assert!(s.matches(&labels(&[("app", "web"), ("env", "prod"), ("team", "a")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("env", "dev"), ("team", "a")])));
        assert!(!s.matches(&labels(&[
            ("app", "web"),
            ("env", "prod"),
            ("team", "a"),
            ("legacy", "")
        ])));
        assert!(LabelSelector::parse("").unwrap().matches(&labels(&[])));
        assert!(LabelSelector::parse("x notin (a)").unwrap().matches(&labels(&[])));
        for bad in ["=x", "a b", "app in a", "app in (a", "a,", "k=v=w", "-bad=x"] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad:?} should not parse");
        }
        assert_eq!(LabelSelector::parse("a=b,c in (d,e)").unwrap().to_string(), "a=b,c in (d,e)");
    }

    #[test]
    fn field_selectors() {
        let pods = super::super::resources::find("", "v1", "pods").unwrap();
        let s = FieldSelector::parse("metadata.name=p1,status.phase!=Failed", pods).unwrap();
        let pod = serde_json::json!({"metadata": {"name": "p1"}, "status": {"phase": "Running"}});
        assert!(s.matches(&pod));
        assert_eq!(s.name(), Some("p1"));
        assert!(FieldSelector::parse("spec.bogus=x", pods).is_err());
    }
}
