//! Policy kinds with the real kubectl against `ringfence server` (both stores), with
//! `ringfence sim-nodes` running the pods: PodDisruptionBudgets and the evictions `kubectl
//! drain` makes under them, ResourceQuota and LimitRange admission.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::sim::SimNodes;
use common::{Backend, Cluster, eventually, watchdog};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

fn items(c: &Cluster, args: &[&str]) -> Vec<Value> {
    c.json(args)["items"].as_array().cloned().unwrap_or_default()
}

fn live(p: &Value) -> bool {
    p["metadata"]["deletionTimestamp"].is_null()
}

fn ready(p: &Value) -> bool {
    live(p)
        && p["status"]["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

fn node_of(p: &Value) -> &str {
    p["spec"]["nodeName"].as_str().unwrap_or("")
}

fn deployment(name: &str, replicas: u32) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{{name: app, image: "registry.k8s.io/pause:3.9"}}]
"#
    )
}

fn budget(name: &str, app: &str, rule: &str) -> String {
    format!(
        r#"
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {{name: {name}}}
spec:
  {rule}
  selector: {{matchLabels: {{app: {app}}}}}
"#
    )
}

/// The budget's (currentHealthy, desiredHealthy, disruptionsAllowed, expectedPods).
fn budget_status(c: &Cluster, name: &str) -> (i64, i64, i64, i64) {
    let s = &c.json(&["get", "pdb", name])["status"];
    let n = |f: &str| s[f].as_i64().unwrap_or(-1);
    (n("currentHealthy"), n("desiredHealthy"), n("disruptionsAllowed"), n("expectedPods"))
}

/// `kubectl drain` evicts every pod but the one a budget protects, retries that one, and
/// finishes once the budget allows it: here after the Deployment has a second Ready pod on
/// the other node.
fn drain_waits_for_the_budget(b: Backend) {
    let _dog = watchdog("drain_waits_for_the_budget", Duration::from_secs(240));
    let c = Cluster::new(b);
    let _nodes = SimNodes::start(&c, "sim", 2, &[]);
    // Everything starts on sim-0.
    c.ok(&["cordon", "sim-1"]);
    c.apply(&deployment("web", 1), &[]);
    c.apply(&deployment("other", 2), &[]);
    c.apply(&budget("web", "web", "minAvailable: 1"), &[]);
    c.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    c.ok(&["rollout", "status", "deployment/other", "--timeout=60s"]);
    assert!(eventually(WAIT, || budget_status(&c, "web") == (1, 1, 0, 1)));
    let table = c.ok(&["get", "pdb"]);
    for col in ["MIN AVAILABLE", "MAX UNAVAILABLE", "ALLOWED DISRUPTIONS"] {
        assert!(table.contains(col), "{table}");
    }
    let row = table.lines().find(|l| l.starts_with("web ")).unwrap_or_default().to_owned();
    assert_eq!(row.split_whitespace().take(4).collect::<Vec<_>>(), ["web", "1", "N/A", "0"]);
    let web_pod = items(&c, &["get", "pods", "-l", "app=web"])[0].clone();
    assert_eq!(node_of(&web_pod), "sim-0");
    let web_name = web_pod["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    c.ok(&["uncordon", "sim-1"]);

    let mut drain = c
        .kubectl_cmd()
        .args(["drain", "sim-0", "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=120s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kubectl drain");
    let said = Arc::new(Mutex::new(String::new()));
    let mut readers = Vec::new();
    for pipe in [
        drain.stdout.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        drain.stderr.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let said = said.clone();
        readers.push(std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                said.lock().expect("output").push_str(&(line + "\n"));
            }
        }));
    }
    let violation = "Cannot evict pod as it would violate the pod's disruption budget";
    assert!(
        eventually(WAIT, || said.lock().expect("output").contains(violation)),
        "{}",
        said.lock().expect("output")
    );
    // The others moved to sim-1; the protected pod stays, and drain keeps trying.
    assert!(eventually(WAIT, || {
        let others = items(&c, &["get", "pods", "-l", "app=other"]);
        others.len() == 2 && others.iter().all(|p| ready(p) && node_of(p) == "sim-1")
    }));
    std::thread::sleep(Duration::from_secs(6));
    assert!(matches!(drain.try_wait(), Ok(None)), "drain gave up: {}", said.lock().expect("o"));
    let web = c.json(&["get", "pod", &web_name]);
    assert!(live(&web) && node_of(&web) == "sim-0", "{web}");
    assert_eq!(c.json(&["get", "node", "sim-0"])["spec"]["unschedulable"], true);

    // A second web pod, Ready on sim-1, lets the budget spare the first.
    c.ok(&["scale", "deployment/web", "--replicas=2"]);
    let status = drain.wait().expect("drain");
    for r in readers {
        let _ = r.join();
    }
    let said = said.lock().expect("output").clone();
    assert!(status.success(), "{said}");
    assert!(said.contains("node/sim-0 drained"), "{said}");
    assert!(said.contains(&format!("pod/{web_name} evicted")), "{said}");
    assert!(eventually(WAIT, || {
        let pods = items(&c, &["get", "pods"]);
        pods.iter().all(|p| node_of(p) == "sim-1") && pods.iter().filter(|p| ready(p)).count() == 4
    }));
}

/// Evictions through the JSON API, several at once: never more than the budget allows;
/// pods that are not Ready or that no budget covers go freely; two budgets on one pod: 500.
fn concurrent_evictions_respect_the_budget(b: Backend) {
    let _dog = watchdog("concurrent_evictions_respect_the_budget", Duration::from_secs(180));
    let c = Cluster::new(b);
    let _nodes = SimNodes::start(&c, "sim", 2, &[]);
    let pods: Vec<String> = (0..5).map(|i| format!("c{i}")).collect();
    for p in &pods {
        c.ok(&[
            "run",
            p,
            "--image=registry.k8s.io/pause:3.9",
            "--labels=app=c",
            "--overrides={\"spec\":{\"terminationGracePeriodSeconds\":1}}",
        ]);
    }
    c.apply(&budget("c", "c", "minAvailable: 3"), &[]);
    assert!(eventually(WAIT, || budget_status(&c, "c") == (5, 3, 2, 5)));
    let evict = |pod: &str| {
        let body = format!(
            r#"{{"apiVersion":"policy/v1","kind":"Eviction","metadata":{{"name":"{pod}","namespace":"default"}}}}"#
        );
        let f = c.write(&format!("evict-{pod}.json"), &body);
        let path = format!("/api/v1/namespaces/default/pods/{pod}/eviction");
        c.kubectl(&["create", "--raw", &path, "-f", f.to_str().expect("utf-8 path")])
    };
    let outcomes: Vec<std::process::Output> = std::thread::scope(|s| {
        let running: Vec<_> = pods.iter().map(|p| s.spawn(|| evict(p))).collect();
        running.into_iter().map(|h| h.join().expect("eviction thread")).collect()
    });
    let evicted = outcomes.iter().filter(|o| o.status.success()).count();
    assert_eq!(evicted, 2, "the budget allowed two disruptions");
    for o in outcomes.iter().filter(|o| !o.status.success()) {
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("TooManyRequests") || err.contains("429"), "{err}");
    }
    assert!(eventually(WAIT, || items(&c, &["get", "pods", "-l", "app=c"]).len() == 3));
    assert!(eventually(WAIT, || budget_status(&c, "c") == (3, 3, 0, 3)));
    let err = String::from_utf8_lossy(&evict("c0").stderr).into_owned()
        + &String::from_utf8_lossy(&evict("c1").stderr)
        + &String::from_utf8_lossy(&evict("c2").stderr);
    assert!(err.contains("429") || err.contains("TooManyRequests"), "{err}");
    // A pod no budget covers goes; one covered twice is refused as Kubernetes does.
    c.ok(&["run", "free", "--image=registry.k8s.io/pause:3.9", "--labels=app=free"]);
    assert!(evict("free").status.success());
    c.apply(&budget("c-again", "c", "maxUnavailable: 1"), &[]);
    let left = items(&c, &["get", "pods", "-l", "app=c"]);
    let name = left[0]["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    let err = String::from_utf8_lossy(&evict(&name).stderr).into_owned();
    assert!(err.contains("more than one PodDisruptionBudget"), "{err}");
    // Bad budgets change nothing.
    for rule in ["minAvailable: 1\n  maxUnavailable: 1", "minAvailable: -1", "maxUnavailable: 120%"]
    {
        let f = c.write("bad-pdb.yaml", &budget("bad", "c", rule));
        let err = c.fails(&["create", "-f", f.to_str().expect("utf-8 path")]);
        assert!(err.contains("is invalid"), "{rule}: {err}");
    }
    assert!(!c.ok(&["get", "pdb", "-o", "name"]).contains("bad"));
}

on_both_backends!(drain_waits_for_the_budget, concurrent_evictions_respect_the_budget);
