//! autoscaling/v1 HorizontalPodAutoscaler ↔ autoscaling/v2 (stored): the CPU utilization
//! target is the v2 Resource metric on cpu; what v1 cannot say (other metrics, behavior,
//! conditions) rides in annotations, as Kubernetes keeps it, so a v1 round trip loses nothing.

use serde_json::{Map, Value, json};

use super::carry;

const METRICS: &str = "autoscaling.alpha.kubernetes.io/metrics";
const CURRENT_METRICS: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
const CONDITIONS: &str = "autoscaling.alpha.kubernetes.io/conditions";
const BEHAVIOR: &str = "autoscaling.alpha.kubernetes.io/behavior";

fn is_cpu(m: &Value) -> bool {
    m["type"] == "Resource" && m["resource"]["name"] == "cpu"
}

/// Takes an annotation holding JSON out of `obj`.
fn take_annotation(obj: &mut Value, key: &str) -> Option<Value> {
    let anns = obj["metadata"].get_mut("annotations")?.as_object_mut()?;
    let v = anns.remove(key)?;
    if anns.is_empty()
        && let Some(m) = obj["metadata"].as_object_mut()
    {
        m.remove("annotations");
    }
    v.as_str().and_then(|s| serde_json::from_str(s).ok())
}

fn put_annotation(obj: &mut Value, key: &str, v: &Value) {
    let meta = &mut obj["metadata"];
    if !meta["annotations"].is_object() {
        meta["annotations"] = Value::Object(Map::new());
    }
    meta["annotations"][key] = Value::String(v.to_string());
}

pub fn to_v2(mut v1: Value) -> Value {
    let mut metrics: Vec<Value> =
        take_annotation(&mut v1, METRICS).and_then(|m| m.as_array().cloned()).unwrap_or_default();
    let behavior = take_annotation(&mut v1, BEHAVIOR);
    let mut current: Vec<Value> = take_annotation(&mut v1, CURRENT_METRICS)
        .and_then(|m| m.as_array().cloned())
        .unwrap_or_default();
    let conditions = take_annotation(&mut v1, CONDITIONS);
    let (spec, status) = (&v1["spec"], &v1["status"]);
    let mut out = json!({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": v1["metadata"].clone(),
        "spec": {},
    });
    for k in ["scaleTargetRef", "minReplicas", "maxReplicas"] {
        carry(spec, k, &mut out["spec"], k);
    }
    if let Some(pct) = spec["targetCPUUtilizationPercentage"].as_i64() {
        metrics.retain(|m| !is_cpu(m));
        metrics.insert(
            0,
            json!({"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": pct}}}),
        );
    }
    if !metrics.is_empty() {
        out["spec"]["metrics"] = Value::Array(metrics);
    }
    if let Some(b) = behavior {
        out["spec"]["behavior"] = b;
    }
    if status.is_object() {
        out["status"] = json!({});
        for k in ["observedGeneration", "lastScaleTime", "currentReplicas", "desiredReplicas"] {
            carry(status, k, &mut out["status"], k);
        }
        if let Some(pct) = status["currentCPUUtilizationPercentage"].as_i64() {
            current.retain(|m| !is_cpu(m));
            current.insert(
                0,
                json!({"type": "Resource", "resource": {"name": "cpu",
                "current": {"averageUtilization": pct}}}),
            );
        }
        if !current.is_empty() {
            out["status"]["currentMetrics"] = Value::Array(current);
        }
        if let Some(c) = conditions {
            out["status"]["conditions"] = c;
        }
    }
    out
}

pub fn from_v2(v2: Value) -> Value {
    let (spec, status) = (&v2["spec"], &v2["status"]);
    let mut out = json!({
        "apiVersion": "autoscaling/v1",
        "kind": "HorizontalPodAutoscaler",
        "metadata": v2["metadata"].clone(),
        "spec": {},
    });
    for k in ["scaleTargetRef", "minReplicas", "maxReplicas"] {
        carry(spec, k, &mut out["spec"], k);
    }
    let metrics = spec["metrics"].as_array().cloned().unwrap_or_default();
    let cpu_target = metrics
        .iter()
        .find(|m| is_cpu(m) && m["resource"]["target"]["type"] == "Utilization")
        .and_then(|m| m["resource"]["target"]["averageUtilization"].as_i64());
    if let Some(pct) = cpu_target {
        out["spec"]["targetCPUUtilizationPercentage"] = json!(pct);
    }
    let others: Vec<Value> =
        metrics.into_iter().filter(|m| !(is_cpu(m) && cpu_target.is_some())).collect();
    if !others.is_empty() {
        put_annotation(&mut out, METRICS, &Value::Array(others));
    }
    if let Some(b) = spec.get("behavior").filter(|b| !b.is_null()) {
        put_annotation(&mut out, BEHAVIOR, b);
    }
    if status.is_object() {
        out["status"] = json!({"currentReplicas": 0, "desiredReplicas": 0});
        for k in ["observedGeneration", "lastScaleTime", "currentReplicas", "desiredReplicas"] {
            carry(status, k, &mut out["status"], k);
        }
        let current = status["currentMetrics"].as_array().cloned().unwrap_or_default();
        let cpu_now = current
            .iter()
            .find(|m| is_cpu(m))
            .and_then(|m| m["resource"]["current"]["averageUtilization"].as_i64());
        if let Some(pct) = cpu_now {
            out["status"]["currentCPUUtilizationPercentage"] = json!(pct);
        }
        let others: Vec<Value> =
            current.into_iter().filter(|m| !(is_cpu(m) && cpu_now.is_some())).collect();
        if !others.is_empty() {
            put_annotation(&mut out, CURRENT_METRICS, &Value::Array(others));
        }
        if let Some(c) = status.get("conditions").filter(|c| !c.is_null()) {
            put_annotation(&mut out, CONDITIONS, c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_target_becomes_a_resource_metric_and_back() {
        let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 1, "maxReplicas": 3, "targetCPUUtilizationPercentage": 50}});
        let v2 = to_v2(v1.clone());
        assert_eq!(v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 50);
        assert_eq!(from_v2(v2), v1);
    }

    #[test]
    fn what_v1_cannot_say_survives_a_round_trip() {
        let v2 = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {"maxReplicas": 5, "metrics": [
                {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}},
                {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}},
            "status": {"currentReplicas": 2, "desiredReplicas": 2,
                "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 40}}}],
                "conditions": [{"type": "AbleToScale", "status": "True"}]}});
        let v1 = from_v2(v2.clone());
        assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 70);
        assert_eq!(v1["status"]["currentCPUUtilizationPercentage"], 40);
        let back = to_v2(v1);
        assert_eq!(back["spec"]["behavior"], v2["spec"]["behavior"]);
        assert_eq!(back["status"]["conditions"], v2["status"]["conditions"]);
        assert_eq!(back["spec"]["metrics"].as_array().map(Vec::len), Some(2));
        assert!(back["metadata"].get("annotations").is_none());
    }
}
