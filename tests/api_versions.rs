//! Versions served by conversion, with the real kubectl against `ringfence server` (both
//! stores): autoscaling/v1 HorizontalPodAutoscalers (stored as autoscaling/v2) and
//! events.k8s.io/v1 Events (stored as core Events).

mod common;

use std::time::Duration;

use common::{Backend, Cluster, eventually, watchdog};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

fn raw(c: &Cluster, path: &str) -> Value {
    serde_json::from_str(&c.ok(&["get", "--raw", path])).expect("JSON from the server")
}

/// `kubectl autoscale` creates an autoscaling/v1 HPA (in protobuf); it reads back in both
/// versions, the controller acts on it, and v1 patches land on the stored v2 object.
fn autoscaling_v1_is_the_v2_object(b: Backend) {
    let _dog = watchdog("autoscaling_v1_is_the_v2_object", Duration::from_secs(120));
    let c = Cluster::new(b);
    c.ok(&["create", "deployment", "web", "--image=registry.k8s.io/pause:3.9"]);
    c.ok(&["autoscale", "deployment", "web", "--min", "1", "--max", "3", "--cpu-percent", "50"]);
    let v2 = c.json(&["get", "hpa", "web"]);
    assert_eq!(v2["apiVersion"], "autoscaling/v2");
    let target = &v2["spec"]["metrics"][0]["resource"];
    assert_eq!(
        (target["name"].as_str(), target["target"]["averageUtilization"].as_i64()),
        (Some("cpu"), Some(50)),
        "{v2}"
    );
    let v1 = raw(&c, "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers/web");
    assert_eq!(v1["apiVersion"], "autoscaling/v1");
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 50, "{v1}");
    assert_eq!(v1["spec"]["scaleTargetRef"]["name"], "web");
    assert!(v1["spec"].get("metrics").is_none(), "{v1}");
    // The HPA controller sees it: its status (conditions only v2 can say) comes back.
    assert!(eventually(WAIT, || {
        let s = &c.json(&["get", "hpa", "web"])["status"];
        s["currentReplicas"] == 1 && s["conditions"].as_array().is_some_and(|c| !c.is_empty())
    }));
    let v1 = raw(&c, "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers/web");
    let conditions = &v1["metadata"]["annotations"]["autoscaling.alpha.kubernetes.io/conditions"];
    assert!(conditions.as_str().is_some_and(|s| s.contains("AbleToScale")), "{v1}");
    let list = raw(&c, "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers");
    assert_eq!(list["apiVersion"], "autoscaling/v1");
    assert_eq!(list["items"][0]["apiVersion"], "autoscaling/v1");

    c.ok(&[
        "patch",
        "horizontalpodautoscalers.v1.autoscaling",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"targetCPUUtilizationPercentage":70,"maxReplicas":4}}"#,
    ]);
    let v2 = c.json(&["get", "hpa", "web"]);
    assert_eq!(v2["spec"]["metrics"].as_array().map(Vec::len), Some(1), "{v2}");
    assert_eq!(v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 70);
    assert_eq!(v2["spec"]["maxReplicas"], 4);
    assert!(v2["metadata"].get("annotations").is_none(), "{v2}");
    // Invalid through v1 as through v2.
    let bad = c.write(
        "bad-hpa.json",
        r#"{"apiVersion":"autoscaling/v1","kind":"HorizontalPodAutoscaler","metadata":{"name":"bad"},
            "spec":{"scaleTargetRef":{"kind":"Deployment","name":"web","apiVersion":"apps/v1"},"minReplicas":5,"maxReplicas":2}}"#,
    );
    let err = c.fails(&["create", "-f", bad.to_str().expect("utf-8 path")]);
    assert!(err.contains("is invalid"), "{err}");
    c.ok(&["delete", "horizontalpodautoscalers.v1.autoscaling", "web"]);
    assert!(c.ok(&["get", "hpa", "-o", "name"]).trim().is_empty());
}

/// events.k8s.io/v1 reads and writes the core Events: `kubectl events` and both APIs agree.
fn events_v1_are_the_core_events(b: Backend) {
    let _dog = watchdog("events_v1_are_the_core_events", Duration::from_secs(120));
    let c = Cluster::new(b);
    let ev = c.write(
        "event.yaml",
        r#"
apiVersion: events.k8s.io/v1
kind: Event
metadata: {name: hello.1, namespace: default}
eventTime: "2026-01-01T00:00:00.000000Z"
reportingController: example.com/tester
reportingInstance: tester-1
action: Testing
reason: Hello
type: Normal
note: a note from the new API
regarding: {kind: ConfigMap, name: cfg, namespace: default, apiVersion: v1}
"#,
    );
    c.ok(&["create", "-f", ev.to_str().expect("utf-8 path")]);
    let core = c.json(&["get", "event", "hello.1"]);
    assert_eq!(core["apiVersion"], "v1");
    assert_eq!(core["message"], "a note from the new API");
    assert_eq!(core["involvedObject"]["name"], "cfg");
    assert_eq!(core["reportingComponent"], "example.com/tester");
    let events = c.ok(&["events"]);
    assert!(events.contains("Hello") && events.contains("a note from the new API"), "{events}");
    // Core events (the controllers') read through the new API.
    c.ok(&["create", "deployment", "web", "--image=registry.k8s.io/pause:3.9"]);
    assert!(eventually(WAIT, || {
        let list = raw(&c, "/apis/events.k8s.io/v1/namespaces/default/events");
        list["apiVersion"] == "events.k8s.io/v1"
            && list["items"].as_array().is_some_and(|items| {
                items.iter().any(|e| {
                    e["apiVersion"] == "events.k8s.io/v1"
                        && e["reason"] == "ScalingReplicaSet"
                        && e["regarding"]["name"] == "web"
                        && e["note"].as_str().is_some_and(|n| n.contains("Scaled up"))
                })
            })
    }));
    let one = raw(&c, "/apis/events.k8s.io/v1/namespaces/default/events/hello.1");
    assert_eq!(one["note"], "a note from the new API");
    assert_eq!(one["eventTime"], "2026-01-01T00:00:00.000000Z");
}

on_both_backends!(autoscaling_v1_is_the_v2_object, events_v1_are_the_core_events);
