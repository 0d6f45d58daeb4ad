//! The scheduling algorithm on hand-built clusters: each plugin's effect on where a pod goes.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::node::v1::RuntimeClass;
use serde_json::{Value, json};

use super::cache::Cache;
use super::cycle::{Outcome, schedule};
use super::pod_info::{Lookups, build};
use super::preemption;
use super::registry::default_profile;
use crate::kube::Informer;
use crate::kube::typed::kind_of;

fn lookups() -> Lookups {
    Lookups {
        runtime_classes: Informer::new(kind_of::<RuntimeClass>()),
        namespaces: Informer::new(kind_of::<Namespace>()),
    }
}

fn node(name: &str, cpu: &str, extra: Value) -> Arc<Node> {
    let mut n = json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {"allocatable": {"cpu": cpu, "memory": "64Gi", "pods": "110"}},
    });
    merge(&mut n, extra);
    Arc::new(serde_json::from_value(n).unwrap())
}

fn pod(name: &str, cpu: &str, extra: Value) -> Arc<Pod> {
    let mut p = json!({
        "metadata": {"name": name, "namespace": "d", "labels": {"app": "x"}},
        "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]},
    });
    merge(&mut p, extra);
    Arc::new(serde_json::from_value(p).unwrap())
}

fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

fn place(cache: &mut Cache, l: &Lookups, p: Arc<Pod>, on: &str) {
    cache.place(Arc::new(build(p, l)), on, false);
}

fn decide(cache: &Cache, l: &Lookups, p: Arc<Pod>) -> Result<String, String> {
    match schedule(&default_profile(), cache, &build(p, l), &Default::default(), &mut 0) {
        Outcome::Feasible(n) => Ok(n),
        Outcome::Unschedulable(d) => Err(d.message()),
    }
}

#[test]
fn resources_must_fit() {
    let l = lookups();
    let mut c = Cache::default();
    c.set_node(node("small", "1", json!({})));
    c.set_node(node("big", "4", json!({})));
    assert_eq!(decide(&c, &l, pod("p", "2", json!({}))), Ok("big".into()));
    place(&mut c, &l, pod("q", "3", json!({})), "big");
    assert_eq!(
        decide(&c, &l, pod("p", "2", json!({}))),
        Err("0/2 nodes are available: 2 Insufficient cpu.".into())
    );
}

#[test]
fn hard_topology_spread_and_node_affinity() {
    let l = lookups();
    let mut c = Cache::default();
    for (n, zone) in [("a1", "a"), ("a2", "a"), ("b1", "b")] {
        c.set_node(node(n, "8", json!({"metadata": {"labels": {"zone": zone}}})));
    }
    place(&mut c, &l, pod("x1", "1", json!({})), "a1");
    let spread = json!({"spec": {"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
        "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "x"}}}]}});
    // zone a has one matching pod, zone b none: a second pod in a would make the skew 2.
    place(&mut c, &l, pod("x2", "1", json!({})), "a2");
    assert_eq!(decide(&c, &l, pod("p", "1", spread.clone())), Ok("b1".into()));
    let only_a = json!({"spec": {"nodeSelector": {"zone": "a"}}});
    let mut both = spread;
    merge(&mut both, only_a);
    // Honouring node affinity, zone b does not count: a alone has no skew.
    assert!(decide(&c, &l, pod("p", "1", both)).unwrap().starts_with('a'));
}

#[test]
fn runtime_class_handlers_and_taints() {
    let l = lookups();
    l.runtime_classes.observe(
        serde_json::from_value(
            json!({"metadata": {"name": "sandboxed", "resourceVersion": "1"}, "handler": "sentry"}),
        )
        .unwrap(),
    );
    let mut c = Cache::default();
    c.set_node(node("plain", "8", json!({})));
    c.set_node(node(
        "kvm",
        "8",
        json!({"status": {"runtimeHandlers": [{"name": "sentry"}]},
        "spec": {"taints": [{"key": "kvm", "effect": "PreferNoSchedule"}]}}),
    ));
    let sandboxed = json!({"spec": {"runtimeClassName": "sandboxed"}});
    assert_eq!(decide(&c, &l, pod("p", "1", sandboxed)), Ok("kvm".into()));
    assert_eq!(
        decide(&c, &l, pod("p", "1", json!({}))),
        Ok("plain".into()),
        "PreferNoSchedule steers away"
    );
    let missing = json!({"spec": {"runtimeClassName": "nope"}});
    assert_eq!(
        decide(&c, &l, pod("p", "1", missing)),
        Err("0/2 nodes are available: 2 RuntimeClass \"nope\" not found.".into())
    );
    c.set_node(node(
        "kvm",
        "8",
        json!({"status": {"runtimeHandlers": [{"name": "sentry"}]},
        "spec": {"taints": [{"key": "kvm", "value": "only", "effect": "NoSchedule"}]}}),
    ));
    let r = decide(&c, &l, pod("p", "1", json!({"spec": {"runtimeClassName": "sandboxed"}})));
    assert_eq!(r, Err("0/2 nodes are available: 1 node(s) didn't support runtime handler \"sentry\", 1 node(s) had untolerated taint {kvm: only}.".into()));
}

#[test]
fn higher_priority_preempts_the_least_important() {
    let l = lookups();
    let mut c = Cache::default();
    c.set_node(node("n1", "2", json!({})));
    c.set_node(node("n2", "2", json!({})));
    place(&mut c, &l, pod("low", "1", json!({"spec": {"priority": 1}})), "n1");
    place(&mut c, &l, pod("lower", "1", json!({"spec": {"priority": 0}})), "n1");
    place(&mut c, &l, pod("high", "2", json!({"spec": {"priority": 100}})), "n2");
    let urgent = build(pod("urgent", "1", json!({"spec": {"priority": 50}})), &l);
    assert!(matches!(
        schedule(&default_profile(), &c, &urgent, &Default::default(), &mut 0),
        Outcome::Unschedulable(_)
    ));
    let plan = preemption::plan(&default_profile(), &c, &urgent).expect("a plan");
    assert_eq!(plan.node, "n1");
    let victims: Vec<&str> = plan.victims.iter().map(|v| v.key.name.as_str()).collect();
    assert_eq!(victims, ["lower"], "one victim is enough, and the least important one");
    let never = build(
        pod("urgent", "1", json!({"spec": {"priority": 50, "preemptionPolicy": "Never"}})),
        &l,
    );
    assert!(preemption::plan(&default_profile(), &c, &never).is_none());
}
