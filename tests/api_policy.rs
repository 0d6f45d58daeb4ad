//! Policy kinds with the real kubectl against `ringfence server` (both stores), with
//! `ringfence sim-nodes` running the pods: PodDisruptionBudgets and the evictions `kubectl
//! drain` makes under them, ResourceQuota and LimitRange admission.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::sim::{SimNodes, deployment, ready};
use common::{Backend, Cluster, eventually, watchdog};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

fn items(c: &Cluster, args: &[&str]) -> Vec<Value> {
    c.json(args)["items"].as_array().cloned().unwrap_or_default()
}

fn live(p: &Value) -> bool {
    p["metadata"]["deletionTimestamp"].is_null()
}

fn node_of(p: &Value) -> &str {
    p["spec"]["nodeName"].as_str().unwrap_or("")
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
    c.apply(&deployment("web", 1, "", ""), &[]);
    c.apply(&deployment("other", 2, "", ""), &[]);
    c.apply(&budget("web", "web", "minAvailable: 1"), &[]);
    // Resolved against the Deployment's scale (through its ReplicaSet): one of two may go.
    c.apply(&budget("other", "other", "maxUnavailable: 50%"), &[]);
    c.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    c.ok(&["rollout", "status", "deployment/other", "--timeout=60s"]);
    assert!(eventually(WAIT, || budget_status(&c, "web") == (1, 1, 0, 1)));
    assert!(eventually(WAIT, || budget_status(&c, "other") == (2, 1, 1, 2)));
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
    // `kubectl create pdb` sends protobuf.
    c.ok(&["create", "pdb", "c", "--selector=app=c", "--min-available=3"]);
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

    // Evicting takes `create` on pods/eviction.
    std::fs::write(c.data_dir().join("tokens.csv"), "tok-ops,ops,1001,\"ops\"\n")
        .expect("write tokens");
    let role = |rules: &str| {
        format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: evictor}}\nrules: {rules}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: evictor}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: evictor}}\nsubjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: ops}}]\n"
        )
    };
    c.apply(&role(r#"[{apiGroups: [""], resources: [pods], verbs: [get, list]}]"#), &[]);
    c.ok(&["run", "spare", "--image=registry.k8s.io/pause:3.9", "--labels=app=spare"]);
    let body = c.write(
        "evict-spare.json",
        r#"{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"spare"}}"#,
    );
    let path = "/api/v1/namespaces/default/pods/spare/eviction";
    let evict_as_ops = || {
        c.kubectl_as_token(
            "tok-ops",
            &["create", "--raw", path, "-f", body.to_str().expect("utf-8 path")],
        )
    };
    let denied = evict_as_ops();
    assert!(String::from_utf8_lossy(&denied.stderr).contains("Forbidden"), "{denied:?}");
    c.apply(
        &role(r#"[{apiGroups: [""], resources: [pods], verbs: [get, list]}, {apiGroups: [""], resources: [pods/eviction], verbs: [create]}]"#),
        &[],
    );
    let allowed = evict_as_ops();
    assert!(allowed.status.success(), "{allowed:?}");
    assert!(eventually(WAIT, || !c.kubectl(&["get", "pod", "spare"]).status.success()));
}

fn quota_used(c: &Cluster, ns: &str, name: &str, resource: &str) -> String {
    let q = c.json(&["get", "quota", name, "-n", ns]);
    q["status"]["used"][resource].as_str().unwrap_or("").to_owned()
}

fn pod_manifest(name: &str, resources: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  containers:
  - name: app
    image: registry.k8s.io/pause:3.9
    resources: {resources}
"#
    )
}

/// LimitRange defaults and bounds, and a quota that refuses the pod that would exceed it and
/// gives back what deleted pods used.
fn quota_and_limit_range_admission(b: Backend) {
    let _dog = watchdog("quota_and_limit_range_admission", Duration::from_secs(180));
    let c = Cluster::new(b);
    c.ok(&["create", "namespace", "team"]);
    c.apply(
        r#"
apiVersion: v1
kind: LimitRange
metadata: {name: defaults, namespace: team}
spec:
  limits:
  - type: Container
    default: {cpu: 500m, memory: 256Mi}
    defaultRequest: {cpu: 250m, memory: 128Mi}
    max: {cpu: 1}
  - type: PersistentVolumeClaim
    max: {storage: 2Gi}
"#,
        &[],
    );
    c.apply(
        r#"
apiVersion: v1
kind: ResourceQuota
metadata: {name: compute, namespace: team}
spec:
  hard: {pods: 2, requests.cpu: 1, requests.memory: 1Gi, limits.cpu: 2}
"#,
        &[],
    );
    assert!(eventually(WAIT, || quota_used(&c, "team", "compute", "pods") == "0"));
    let describe = c.ok(&["describe", "quota", "compute", "-n", "team"]);
    assert!(describe.contains("Resource") && describe.contains("Used"), "{describe}");
    assert!(describe.lines().any(|l| l.split_whitespace().eq(["pods", "0", "2"])), "{describe}");

    c.ok(&["run", "p1", "--image=registry.k8s.io/pause:3.9", "-n", "team"]);
    let p1 = c.json(&["get", "pod", "p1", "-n", "team"]);
    let res = &p1["spec"]["containers"][0]["resources"];
    assert_eq!(res["requests"]["cpu"], "250m", "{res}");
    assert_eq!(res["requests"]["memory"], "128Mi", "{res}");
    assert_eq!(res["limits"]["cpu"], "500m", "{res}");
    assert_eq!(res["limits"]["memory"], "256Mi", "{res}");

    let big = c.write("big.yaml", &pod_manifest("big", "{limits: {cpu: \"2\"}}"));
    let err = c.fails(&["create", "-n", "team", "-f", big.to_str().expect("utf-8 path")]);
    assert!(err.contains("maximum cpu usage per Container is 1, but limit is 2"), "{err}");
    assert!(!c.kubectl(&["get", "pod", "big", "-n", "team"]).status.success());

    c.ok(&["run", "p2", "--image=registry.k8s.io/pause:3.9", "-n", "team"]);
    assert_eq!(quota_used(&c, "team", "compute", "pods"), "2");
    assert_eq!(quota_used(&c, "team", "compute", "requests.cpu"), "500m");
    assert_eq!(quota_used(&c, "team", "compute", "requests.memory"), "256Mi");
    let table = c.ok(&["get", "quota", "-n", "team"]);
    assert!(table.contains("REQUEST") && table.contains("pods: 2/2"), "{table}");
    assert!(table.contains("limits.cpu: 1/2"), "{table}");

    let err = c.fails(&["run", "p3", "--image=registry.k8s.io/pause:3.9", "-n", "team"]);
    assert!(
        err.contains("exceeded quota: compute, requested: pods=1, used: pods=2, limited: pods=2"),
        "{err}"
    );
    assert!(!c.kubectl(&["get", "pod", "p3", "-n", "team"]).status.success());
    assert_eq!(quota_used(&c, "team", "compute", "pods"), "2", "a refusal charges nothing");

    // A deleted pod gives its share back.
    c.ok(&["delete", "pod", "p1", "-n", "team", "--wait=true"]);
    assert!(eventually(WAIT, || quota_used(&c, "team", "compute", "pods") == "1"));
    assert_eq!(quota_used(&c, "team", "compute", "requests.cpu"), "250m");
    c.ok(&["run", "p3", "--image=registry.k8s.io/pause:3.9", "-n", "team"]);

    let claim = |size: &str| {
        format!(
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: data-{}, namespace: team}}\nspec: {{accessModes: [ReadWriteOnce], resources: {{requests: {{storage: {size}}}}}}}\n",
            size.to_lowercase()
        )
    };
    let big = c.write("big-claim.yaml", &claim("5Gi"));
    let err = c.fails(&["create", "-f", big.to_str().expect("utf-8 path")]);
    assert!(
        err.contains("maximum storage usage per PersistentVolumeClaim is 2Gi, but request is 5Gi"),
        "{err}"
    );
    c.apply(&claim("1Gi"), &[]);

    // Bad specs are refused whole.
    let bad_quota = "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: bad, namespace: team}\nspec: {hard: {pods: lots}}\n";
    let bad_range = "apiVersion: v1\nkind: LimitRange\nmetadata: {name: bad, namespace: team}\nspec: {limits: [{type: Container, min: {cpu: \"2\"}, max: {cpu: \"1\"}}]}\n";
    for (file, text) in [("bad-quota.yaml", bad_quota), ("bad-range.yaml", bad_range)] {
        let f = c.write(file, text);
        let err = c.fails(&["create", "-f", f.to_str().expect("utf-8 path")]);
        assert!(err.contains("is invalid"), "{err}");
    }
    assert!(!c.ok(&["get", "quota,limits", "-n", "team", "-o", "name"]).contains("/bad"));
}

/// Creates racing for a quota's last units: exactly as many succeed as it allows. A quota on
/// CPU requests makes pods state them.
fn concurrent_creates_never_exceed_a_quota(b: Backend) {
    let _dog = watchdog("concurrent_creates_never_exceed_a_quota", Duration::from_secs(180));
    let c = Cluster::new(b);
    c.ok(&["create", "namespace", "race"]);
    let before = c.ok(&["get", "secrets", "-n", "race", "-o", "name"]).lines().count();
    let hard = before + 5;
    // `kubectl create quota` sends protobuf.
    let hard_list = format!("--hard=secrets={hard},requests.cpu=1,services.nodeports=0");
    c.ok(&["create", "quota", "objects", &hard_list, "-n", "race"]);
    assert!(eventually(WAIT, || quota_used(&c, "race", "objects", "secrets") == before.to_string()));
    let outcomes: Vec<std::process::Output> = std::thread::scope(|s| {
        let running: Vec<_> = (0..12)
            .map(|i| {
                let c = &c;
                s.spawn(move || {
                    c.kubectl(&[
                        "create",
                        "secret",
                        "generic",
                        &format!("s{i}"),
                        "--from-literal=a=b",
                        "-n",
                        "race",
                    ])
                })
            })
            .collect();
        running.into_iter().map(|h| h.join().expect("create thread")).collect()
    });
    let created = outcomes.iter().filter(|o| o.status.success()).count();
    assert_eq!(created, 5);
    for o in outcomes.iter().filter(|o| !o.status.success()) {
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("exceeded quota: objects"), "{err}");
    }
    let now = c.ok(&["get", "secrets", "-n", "race", "-o", "name"]).lines().count();
    assert_eq!(now, hard);
    assert_eq!(quota_used(&c, "race", "objects", "secrets"), hard.to_string());

    let bare = c.write("bare.yaml", &pod_manifest("bare", "{}"));
    let err = c.fails(&["create", "-n", "race", "-f", bare.to_str().expect("utf-8 path")]);
    assert!(err.contains("failed quota: objects: must specify requests.cpu for: app"), "{err}");
    let sized = c.write("sized.yaml", &pod_manifest("sized", "{requests: {cpu: 300m}}"));
    c.ok(&["create", "-n", "race", "-f", sized.to_str().expect("utf-8 path")]);
    assert!(eventually(WAIT, || quota_used(&c, "race", "objects", "requests.cpu") == "300m"));

    // Updates are charged what they add: a Service may not become a NodePort here.
    c.ok(&["create", "service", "clusterip", "svc", "--tcp=80:8080", "-n", "race"]);
    let err = c.fails(&[
        "patch",
        "service",
        "svc",
        "-n",
        "race",
        "-p",
        r#"{"spec":{"type":"NodePort"}}"#,
    ]);
    assert!(err.contains("exceeded quota: objects, requested: services.nodeports=1"), "{err}");
    let svc = c.json(&["get", "service", "svc", "-n", "race"]);
    assert_eq!(svc["spec"]["type"], "ClusterIP");
}

on_both_backends!(
    drain_waits_for_the_budget,
    concurrent_evictions_respect_the_budget,
    quota_and_limit_range_admission,
    concurrent_creates_never_exceed_a_quota
);
