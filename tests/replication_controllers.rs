//! core/v1 ReplicationControllers with the real kubectl and the official Python client against
//! `ringfence server` (both stores) and simulated nodes: defaulting from the template,
//! validation, the controller keeping the count, the scale subresource, table output,
//! quota and cascading deletion.

mod common;

use std::time::Duration;

use common::sim::{SimNodes, ready};
use common::{Backend, Cluster, eventually, watchdog};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(40);

/// A controller of `replicas` pause pods labelled `app: <name>`, its selector left out.
fn manifest(name: &str, replicas: u32) -> String {
    format!(
        r#"
apiVersion: v1
kind: ReplicationController
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{{name: app, image: "registry.k8s.io/pause:3.9"}}]
"#
    )
}

fn live_pods(c: &Cluster, app: &str) -> Vec<Value> {
    let pods = c.json(&["get", "pods", "-l", &format!("app={app}")]);
    let items = pods["items"].as_array().cloned().unwrap_or_default();
    items.into_iter().filter(|p| p["metadata"]["deletionTimestamp"].is_null()).collect()
}

fn row(c: &Cluster, args: &[&str]) -> (Vec<String>, Vec<String>) {
    let table = c.ok(args);
    let mut lines = table.lines().map(|l| l.split_whitespace().map(str::to_owned).collect());
    (lines.next().unwrap_or_default(), lines.next().unwrap_or_default())
}

fn keeps_its_pods_and_scales(b: Backend) {
    let _guard = watchdog("replication controller test", Duration::from_secs(300));
    let c = Cluster::new(b);
    let _nodes = SimNodes::start(&c, "sim", 2, &[]);
    c.apply(&manifest("web", 3), &[]);

    // Defaulted from the template: the selector and the controller's own labels.
    let rc = c.json(&["get", "rc", "web"]);
    assert_eq!(rc["spec"]["selector"], serde_json::json!({"app": "web"}), "{rc}");
    assert_eq!(rc["metadata"]["labels"], serde_json::json!({"app": "web"}), "{rc}");
    assert!(eventually(WAIT, || {
        let pods = live_pods(&c, "web");
        pods.len() == 3 && pods.iter().all(ready)
    }));
    assert!(eventually(WAIT, || row(&c, &["get", "rc", "web"]).1[1..4] == ["3", "3", "3"]));
    let (header, line) = row(&c, &["get", "rc", "web"]);
    assert_eq!(header, ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]);
    assert_eq!(line[0], "web");
    let (header, line) = row(&c, &["get", "rc", "web", "-o", "wide"]);
    assert_eq!(header[5..], ["CONTAINERS", "IMAGES", "SELECTOR"], "{header:?}");
    assert_eq!(line[5..], ["app", "registry.k8s.io/pause:3.9", "app=web"], "{line:?}");
    assert!(c.ok(&["get", "all"]).contains("replicationcontroller/web"));
    let described = c.ok(&["describe", "rc", "web"]);
    assert!(described.contains("3 Running / 0 Waiting / 0 Succeeded / 0 Failed"), "{described}");
    assert!(described.contains("SuccessfulCreate"), "{described}");
    let uid = rc["metadata"]["uid"].clone();
    assert!(live_pods(&c, "web").iter().all(|p| p["metadata"]["ownerReferences"][0]["uid"] == uid));

    // A deleted pod is replaced; scaling down keeps one.
    let gone = live_pods(&c, "web")[0]["metadata"]["name"].as_str().unwrap().to_owned();
    c.ok(&["delete", "pod", &gone, "--wait=false"]);
    assert!(eventually(WAIT, || {
        let pods = live_pods(&c, "web");
        pods.len() == 3 && pods.iter().all(|p| p["metadata"]["name"] != gone.as_str() && ready(p))
    }));
    c.ok(&["scale", "rc", "web", "--replicas=1"]);
    assert!(eventually(WAIT, || live_pods(&c, "web").len() == 1));
    let scale =
        c.ok(&["get", "--raw", "/api/v1/namespaces/default/replicationcontrollers/web/scale"]);
    let scale: Value = serde_json::from_str(&scale).unwrap();
    assert_eq!(
        (scale["spec"]["replicas"].as_i64(), scale["status"]["selector"].as_str()),
        (Some(1), Some("app=web"))
    );
    assert!(eventually(WAIT, || {
        let s = &c.json(&["get", "rc", "web"])["status"];
        s["replicas"] == 1 && s["readyReplicas"] == 1 && s["observedGeneration"] == 2
    }));

    // Refused, and nothing stored: a selector that misses the template, and no template.
    let bad =
        manifest("bad", 1).replace("  replicas: 1\n", "  replicas: 1\n  selector: {app: other}\n");
    let f = c.write("bad.yaml", &bad);
    let err = c.fails(&["apply", "-f", f.to_str().unwrap()]);
    assert!(err.contains("`selector` does not match template `labels`"), "{err}");
    let f = c.write("empty.yaml", "apiVersion: v1\nkind: ReplicationController\nmetadata: {name: empty}\nspec: {replicas: 1}\n");
    let err = c.fails(&["apply", "-f", f.to_str().unwrap()]);
    assert!(err.contains("spec.template: Required value"), "{err}");
    assert!(!c.kubectl(&["get", "rc", "bad"]).status.success());
    assert!(!c.kubectl(&["get", "rc", "empty"]).status.success());

    // A quota on the count of controllers refuses the second.
    c.ok(&["create", "quota", "rcs", "--hard=replicationcontrollers=1"]);
    assert!(eventually(WAIT, || {
        c.json(&["get", "quota", "rcs"])["status"]["used"]["replicationcontrollers"] == "1"
    }));
    let f = c.write("second.yaml", &manifest("second", 1));
    let err = c.fails(&["apply", "-f", f.to_str().unwrap()]);
    assert!(err.contains("exceeded quota"), "{err}");
    c.ok(&["delete", "quota", "rcs"]);

    // Deleted leaving its pod: a new controller of the same selector adopts it and makes
    // one more; deleted with its pods, all go.
    let kept = live_pods(&c, "web")[0]["metadata"]["name"].as_str().unwrap().to_owned();
    c.ok(&["delete", "rc", "web", "--cascade=orphan", "--timeout=60s"]);
    assert!(eventually(WAIT, || {
        let pods = live_pods(&c, "web");
        pods.len() == 1
            && pods[0]["metadata"]["ownerReferences"].as_array().is_none_or(|a| a.is_empty())
    }));
    c.apply(&manifest("web", 2), &[]);
    let uid = c.json(&["get", "rc", "web"])["metadata"]["uid"].clone();
    assert!(eventually(WAIT, || {
        let pods = live_pods(&c, "web");
        pods.len() == 2 && pods.iter().all(|p| p["metadata"]["ownerReferences"][0]["uid"] == uid)
    }));
    let names: Vec<Value> =
        live_pods(&c, "web").iter().map(|p| p["metadata"]["name"].clone()).collect();
    assert!(names.contains(&Value::from(kept.as_str())), "{kept} was adopted: {names:?}");
    c.ok(&["delete", "rc", "web", "--timeout=60s"]);
    assert!(eventually(WAIT, || live_pods(&c, "web").is_empty()));

    // `kubectl apply --prune` lists every kind of its default list (ReplicationControllers
    // among them): what left the file goes.
    let cm = |name: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, labels: {{set: demo}}}}\n"
        )
    };
    let f = c.write("set.yaml", &format!("{}---\n{}", cm("keep"), cm("drop")));
    c.ok(&["apply", "-f", f.to_str().unwrap()]);
    let f = c.write("set.yaml", &cm("keep"));
    let out = c.ok(&["apply", "--prune", "-l", "set=demo", "-f", f.to_str().unwrap()]);
    assert!(out.contains("configmap/drop pruned"), "{out}");
    assert!(c.kubectl(&["get", "configmap", "keep"]).status.success());
}

/// The official Python client drives one (`tests/python/replication_controllers.py`).
fn python_client_drives_a_replication_controller(b: Backend) {
    let c = Cluster::new(b);
    let _nodes = SimNodes::start(&c, "sim", 1, &[]);
    let out =
        common::python::run("replication_controllers.py", &c.kubeconfig, Duration::from_secs(180));
    assert!(out.contains("replicationcontroller ok"), "{out}");
}

on_both_backends!(keeps_its_pods_and_scales, python_client_drives_a_replication_controller);
