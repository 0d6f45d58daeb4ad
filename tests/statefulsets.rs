//! StatefulSets end to end: the real kubectl against `ringfence server` (both stores), with
//! `ringfence sim-nodes` as the nodes where pods must run, and the cluster DNS server asked
//! for a pod's own name under its headless Service.

mod common;

use std::collections::HashMap;
use std::io::BufReader;
use std::process::Stdio;
use std::sync::mpsc::Receiver;
use std::time::Duration;

use common::sim::SimNodes;
use common::{Backend, Cluster, eventually, watchdog};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(40);

/// A headless Service `name` and a StatefulSet of `replicas` under it, each pod with a
/// `data` claim; `extra` goes into the set's spec.
fn manifest(name: &str, replicas: u32, extra: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  clusterIP: None
  selector: {{app: {name}}}
  ports: [{{name: http, port: 80}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: {name}}}
spec:
  serviceName: {name}
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
{extra}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: app
        image: registry.k8s.io/pause:3.9
        volumeMounts: [{{name: data, mountPath: /data}}]
  volumeClaimTemplates:
  - metadata: {{name: data}}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {{requests: {{storage: 1Gi}}}}
"#
    )
}

fn items(c: &Cluster, args: &[&str]) -> Vec<Value> {
    c.json(args)["items"].as_array().cloned().unwrap_or_default()
}

fn names(objs: &[Value]) -> Vec<String> {
    let mut n: Vec<String> =
        objs.iter().map(|o| o["metadata"]["name"].as_str().unwrap_or("").to_owned()).collect();
    n.sort();
    n
}

fn live_pods(c: &Cluster, selector: &str) -> Vec<Value> {
    items(c, &["get", "pods", "-l", selector])
        .into_iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect()
}

fn ready(p: &Value) -> bool {
    p["metadata"]["deletionTimestamp"].is_null()
        && p["status"]["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

fn revision(p: &Value) -> String {
    p["metadata"]["labels"]["controller-revision-hash"].as_str().unwrap_or("").to_owned()
}

/// The live pods of `app` by name.
fn pods_by_name(c: &Cluster, app: &str) -> HashMap<String, Value> {
    live_pods(c, &format!("app={app}"))
        .into_iter()
        .map(|p| (p["metadata"]["name"].as_str().unwrap_or("").to_owned(), p))
        .collect()
}

/// Every pod watch event of `selector`, as kubectl prints them.
struct PodWatch {
    child: std::process::Child,
    events: Receiver<Value>,
}

impl PodWatch {
    fn start(c: &Cluster, selector: &str) -> Self {
        let mut child = c
            .kubectl_cmd()
            .args(["get", "pods", "-l", selector, "--watch", "-o", "json", "--output-watch-events"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("kubectl get --watch");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, events) = std::sync::mpsc::channel::<Value>();
        std::thread::spawn(move || {
            let stream = serde_json::Deserializer::from_reader(BufReader::new(stdout));
            for v in stream.into_iter::<Value>().map_while(Result::ok) {
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
        Self { child, events }
    }

    /// The events until none came for `quiet`, or at most 30 s of them (pods whose status
    /// keeps changing must not keep the test waiting forever).
    fn drain(&self, quiet: Duration) -> Vec<Value> {
        let until = std::time::Instant::now() + Duration::from_secs(30);
        std::iter::from_fn(|| {
            let left = until.saturating_duration_since(std::time::Instant::now());
            self.events.recv_timeout(quiet.min(left)).ok()
        })
        .collect()
    }
}

impl Drop for PodWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn event_pod(ev: &Value) -> (&str, &str) {
    (ev["type"].as_str().unwrap_or(""), ev["object"]["metadata"]["name"].as_str().unwrap_or(""))
}

fn set_partition(c: &Cluster, partition: u32) {
    let patch = format!(
        r#"{{"spec":{{"updateStrategy":{{"rollingUpdate":{{"partition":{partition}}}}}}}}}"#
    );
    c.ok(&["patch", "sts", "web", "-p", &patch]);
}

fn api_validation_defaults_and_cascade(b: Backend) {
    let _guard = watchdog("statefulset api test", Duration::from_secs(240));
    let c = Cluster::new(b);
    let resources = c.ok(&["api-resources", "--api-group=apps"]);
    assert!(
        resources.lines().any(|l| l.starts_with("statefulsets") && l.contains(" sts ")),
        "{resources}"
    );
    assert!(resources.contains("controllerrevisions"), "{resources}");
    let explain = c.ok(&["explain", "statefulset.spec.updateStrategy.rollingUpdate"]);
    assert!(explain.contains("partition"), "{explain}");
    let explain = c.ok(&["explain", "controllerrevision"]);
    assert!(explain.contains("revision"), "{explain}");

    // Bad specs: 422, nothing stored.
    let bad_selector = manifest("bad", 1, "")
        .replace("selector: {matchLabels: {app: bad}}", "selector: {matchLabels: {app: other}}");
    let out = c
        .kubectl_cmd()
        .args(["apply", "-f", c.write("bad.yaml", &bad_selector).to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("is invalid") && err.contains("selector"),
        "{err}"
    );
    let negative = manifest("neg", 1, "").replace("replicas: 1", "replicas: -1");
    let out = c
        .kubectl_cmd()
        .args(["apply", "-f", c.write("neg.yaml", &negative).to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("spec.replicas"), "{err}");
    let bad_policy = manifest("pol", 1, "  podManagementPolicy: Sometimes");
    let out = c
        .kubectl_cmd()
        .args(["apply", "-f", c.write("pol.yaml", &bad_policy).to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success(), "an unknown podManagementPolicy was accepted");
    let raw = c.ok(&["get", "--raw", "/apis/apps/v1/namespaces/default/statefulsets"]);
    let listed: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(listed["items"], serde_json::json!([]), "bad sets were stored: {raw}");

    // Defaults. No node: OrderedReady stops at the first pod, which stays Pending.
    c.apply(&manifest("web", 3, ""), &[]);
    let s = c.json(&["get", "sts", "web"]);
    let spec = &s["spec"];
    assert_eq!(spec["podManagementPolicy"], "OrderedReady");
    assert_eq!(spec["updateStrategy"]["type"], "RollingUpdate");
    assert_eq!(spec["updateStrategy"]["rollingUpdate"]["partition"], 0);
    assert_eq!(spec["revisionHistoryLimit"], 10);
    assert_eq!(spec["persistentVolumeClaimRetentionPolicy"]["whenScaled"], "Retain");
    assert_eq!(spec["persistentVolumeClaimRetentionPolicy"]["whenDeleted"], "Retain");
    assert_eq!(spec["volumeClaimTemplates"][0]["spec"]["volumeMode"], "Filesystem");
    assert!(eventually(WAIT, || !live_pods(&c, "app=web").is_empty()));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(names(&live_pods(&c, "app=web")), ["web-0"], "OrderedReady waits for web-0");
    let p = c.json(&["get", "pod", "web-0"]);
    assert_eq!(p["spec"]["hostname"], "web-0");
    assert_eq!(p["spec"]["subdomain"], "web");
    assert_eq!(p["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"], "web-0");
    assert_eq!(p["metadata"]["labels"]["apps.kubernetes.io/pod-index"], "0");
    let claim =
        p["spec"]["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "data").cloned();
    assert_eq!(claim.unwrap()["persistentVolumeClaim"]["claimName"], "data-web-0");
    assert_eq!(names(&items(&c, &["get", "pvc"])), ["data-web-0"]);

    // The revision: its name is the pods' label; Table columns like Kubernetes'.
    let revs = items(&c, &["get", "controllerrevisions"]);
    assert_eq!(revs.len(), 1, "{revs:?}");
    assert_eq!(revs[0]["revision"], 1);
    assert_eq!(revision(&p), revs[0]["metadata"]["name"].as_str().unwrap());
    let table = c.ok(&["get", "controllerrevisions"]);
    assert!(
        table.starts_with("NAME")
            && table.contains("CONTROLLER")
            && table.contains("statefulset.apps/web"),
        "{table}"
    );
    let table = c.ok(&["get", "sts"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "AGE"], "{table}");
    assert!(table.lines().nth(1).unwrap().contains("0/3"), "{table}");
    let s = c.json(&["get", "sts", "web"]);
    assert_eq!(s["status"]["replicas"], 1, "{s}");
    assert_eq!(s["status"]["updateRevision"], revs[0]["metadata"]["name"]);

    // Spec fields other than replicas, template, update strategy... are immutable.
    let err = c.fails(&["patch", "sts", "web", "-p", r#"{"spec":{"serviceName":"other"}}"#]);
    assert!(err.contains("Forbidden"), "{err}");
    let err =
        c.fails(&["patch", "sts", "web", "-p", r#"{"spec":{"podManagementPolicy":"Parallel"}}"#]);
    assert!(err.contains("Forbidden"), "{err}");
    assert_eq!(c.json(&["get", "sts", "web"])["spec"]["serviceName"], "web");
    // The scale subresource.
    assert!(c.ok(&["scale", "sts", "web", "--replicas=2"]).contains("scaled"));
    let scale = c.ok(&["get", "--raw", "/apis/apps/v1/namespaces/default/statefulsets/web/scale"]);
    let scale: Value = serde_json::from_str(&scale).unwrap();
    assert_eq!(
        (scale["kind"].as_str(), scale["spec"]["replicas"].as_i64()),
        (Some("Scale"), Some(2))
    );
    assert_eq!(scale["status"]["selector"], "app=web");

    // Parallel: every pod at once, even when none can run.
    c.apply(&manifest("par", 3, "  podManagementPolicy: Parallel"), &[]);
    assert!(
        eventually(WAIT, || names(&live_pods(&c, "app=par")) == ["par-0", "par-1", "par-2"]),
        "{:?}",
        names(&live_pods(&c, "app=par"))
    );

    // Deleting the set takes its pods and revisions; claims stay (Retain).
    c.ok(&["delete", "sts", "par", "--timeout=60s"]);
    assert!(eventually(WAIT, || live_pods(&c, "app=par").is_empty()));
    assert!(eventually(WAIT, || names(&items(&c, &["get", "controllerrevisions"]))
        .iter()
        .all(|n| !n.starts_with("par-"))));
    assert_eq!(
        names(&items(&c, &["get", "pvc", "-l", "app=par"])),
        ["data-par-0", "data-par-1", "data-par-2"]
    );

    // Claims that go with the pods a scale down removes, and with the set.
    let delete_claims = "  podManagementPolicy: Parallel\n  persistentVolumeClaimRetentionPolicy: {whenScaled: Delete, whenDeleted: Delete}";
    c.apply(&manifest("tmp", 2, delete_claims), &[]);
    let claims = |c: &Cluster| names(&items(c, &["get", "pvc", "-l", "app=tmp"]));
    assert!(eventually(WAIT, || claims(&c) == ["data-tmp-0", "data-tmp-1"]), "{:?}", claims(&c));
    c.ok(&["scale", "sts", "tmp", "--replicas=1"]);
    assert!(eventually(WAIT, || claims(&c) == ["data-tmp-0"]), "{:?}", claims(&c));
    c.ok(&["delete", "sts", "tmp", "--timeout=60s"]);
    assert!(eventually(WAIT, || claims(&c).is_empty()), "{:?}", claims(&c));

    // History beyond revisionHistoryLimit goes, oldest first; the numbers keep counting.
    c.apply(&manifest("hist", 0, "  revisionHistoryLimit: 1"), &[]);
    let revisions = |c: &Cluster| -> Vec<i64> {
        let mut r: Vec<i64> = items(c, &["get", "controllerrevisions", "-l", "app=hist"])
            .iter()
            .filter_map(|r| r["revision"].as_i64())
            .collect();
        r.sort();
        r
    };
    for (i, tag) in ["3.8", "3.7", "3.6"].iter().enumerate() {
        c.ok(&["set", "image", "sts/hist", &format!("app=registry.k8s.io/pause:{tag}")]);
        let newest = i as i64 + 2;
        assert!(
            eventually(WAIT, || revisions(&c) == [newest - 1, newest]),
            "after {tag}: {:?}",
            revisions(&c)
        );
    }

    // A namespace's removal takes its sets.
    c.ok(&["create", "namespace", "gone"]);
    c.apply(&manifest("db", 1, ""), &["-n", "gone"]);
    assert!(eventually(WAIT, || !items(&c, &["get", "pods", "-n", "gone"]).is_empty()));
    c.ok(&["delete", "namespace", "gone", "--timeout=60s"]);
    let raw = c.ok(&["get", "--raw", "/apis/apps/v1/statefulsets"]);
    assert!(!raw.contains("\"gone\""), "{raw}");
}

fn scales_rolls_and_heals_in_order(b: Backend) {
    let _guard = watchdog("statefulset controller test", Duration::from_secs(420));
    let c = Cluster::new(b);
    let watch = PodWatch::start(&c, "app=web");
    c.apply(&manifest("web", 3, ""), &[]);
    assert!(eventually(WAIT, || !live_pods(&c, "app=web").is_empty()));
    std::thread::sleep(Duration::from_secs(1));
    let _nodes = SimNodes::start(&c, "sim", 2, &[]);
    c.ok(&["rollout", "status", "sts/web", "--timeout=60s"]);

    // Pod N was created only once pod N-1 was Ready.
    let mut ready_seen: Vec<String> = Vec::new();
    for ev in watch.drain(Duration::from_secs(2)) {
        let (kind, name) = event_pod(&ev);
        if kind == "ADDED" && name != "web-0" {
            let n: u32 = name.trim_start_matches("web-").parse().unwrap();
            let before = format!("web-{}", n - 1);
            assert!(ready_seen.contains(&before), "{name} was created before {before} was Ready");
        }
        if ready(&ev["object"]) {
            ready_seen.push(name.to_owned());
        }
    }
    let pods = pods_by_name(&c, "web");
    let mut seen: Vec<&String> = pods.keys().collect();
    seen.sort();
    assert_eq!(seen, ["web-0", "web-1", "web-2"]);
    assert_eq!(names(&items(&c, &["get", "pvc"])), ["data-web-0", "data-web-1", "data-web-2"]);
    let table = c.ok(&["get", "sts", "web", "-o", "wide"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "AGE", "CONTAINERS", "IMAGES"], "{table}");
    assert!(table.lines().nth(1).unwrap().contains("3/3"), "{table}");
    let described = c.ok(&["describe", "sts", "web"]);
    assert!(described.contains("3 Running / 0 Waiting / 0 Succeeded / 0 Failed"), "{described}");
    assert!(described.contains("SuccessfulCreate"), "{described}");
    // The headless Service's endpoints name each pod.
    assert!(eventually(WAIT, || {
        let slices = items(&c, &["get", "endpointslices", "-l", "kubernetes.io/service-name=web"]);
        let mut hosts: Vec<String> = slices
            .iter()
            .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
            .filter_map(|e| e["hostname"].as_str().map(str::to_owned))
            .collect();
        hosts.sort();
        hosts == ["web-0", "web-1", "web-2"]
    }));

    // Scale down: from the highest, one at a time; claims stay.
    c.ok(&["scale", "sts", "web", "--replicas=1"]);
    assert!(eventually(WAIT, || names(&live_pods(&c, "app=web")) == ["web-0"]));
    let deletions: Vec<String> = watch
        .drain(Duration::from_secs(2))
        .iter()
        .filter(|e| {
            e["type"] == "MODIFIED" && !e["object"]["metadata"]["deletionTimestamp"].is_null()
        })
        .map(|e| event_pod(e).1.to_owned())
        .fold(Vec::new(), |mut v, n| {
            if !v.contains(&n) {
                v.push(n);
            }
            v
        });
    assert_eq!(deletions, ["web-2", "web-1"], "scale down order");
    assert_eq!(names(&items(&c, &["get", "pvc"])), ["data-web-0", "data-web-1", "data-web-2"]);
    c.ok(&["scale", "sts", "web", "--replicas=3"]);
    c.ok(&["rollout", "status", "sts/web", "--timeout=60s"]);
    assert_eq!(names(&live_pods(&c, "app=web")), ["web-0", "web-1", "web-2"]);
    let old_rev = revision(&pods_by_name(&c, "web")["web-0"]);
    watch.drain(Duration::from_millis(500));

    // A template change under a partition of 2 updates only web-2.
    set_partition(&c, 2);
    c.ok(&["set", "image", "sts/web", "app=registry.k8s.io/pause:3.10"]);
    let status = c.ok(&["rollout", "status", "sts/web", "--timeout=60s"]);
    assert!(status.contains("partitioned roll out complete"), "{status}");
    let s = c.json(&["get", "sts", "web"]);
    let new_rev = s["status"]["updateRevision"].as_str().unwrap().to_owned();
    assert_ne!(new_rev, old_rev);
    assert!(eventually(WAIT, || {
        let p = pods_by_name(&c, "web");
        p.len() == 3 && p.values().all(ready) && revision(&p["web-2"]) == new_rev
    }));
    std::thread::sleep(Duration::from_secs(2));
    let p = pods_by_name(&c, "web");
    assert_eq!((revision(&p["web-0"]), revision(&p["web-1"])), (old_rev.clone(), old_rev.clone()));
    assert_eq!(p["web-2"]["spec"]["containers"][0]["image"], "registry.k8s.io/pause:3.10");
    assert_eq!(p["web-0"]["spec"]["containers"][0]["image"], "registry.k8s.io/pause:3.9");
    assert_eq!(c.json(&["get", "sts", "web"])["status"]["currentRevision"], old_rev.as_str());
    watch.drain(Duration::from_millis(500));

    // Partition 0: the rest roll from ordinal 1 down to 0.
    set_partition(&c, 0);
    c.ok(&["rollout", "status", "sts/web", "--timeout=60s"]);
    assert!(eventually(WAIT, || {
        let s = c.json(&["get", "sts", "web"]);
        s["status"]["currentRevision"] == new_rev.as_str() && s["status"]["updatedReplicas"] == 3
    }));
    let order: Vec<String> = watch
        .drain(Duration::from_secs(1))
        .iter()
        .filter(|e| e["type"] == "DELETED")
        .map(|e| event_pod(e).1.to_owned())
        .collect();
    assert_eq!(order, ["web-1", "web-0"], "rolling update order");
    assert!(pods_by_name(&c, "web").values().all(|p| revision(p) == new_rev));

    // Undo: back to the first template, recorded as revision 3.
    let history = c.ok(&["rollout", "history", "sts/web"]);
    assert!(history.contains('1') && history.contains('2'), "{history}");
    let first = c.ok(&["rollout", "history", "sts/web", "--revision=1"]);
    assert!(first.contains("registry.k8s.io/pause:3.9"), "{first}");
    c.ok(&["rollout", "undo", "sts/web"]);
    c.ok(&["rollout", "status", "sts/web", "--timeout=60s"]);
    assert!(eventually(WAIT, || {
        let p = pods_by_name(&c, "web");
        p.len() == 3 && p.values().all(|p| ready(p) && revision(p) == old_rev)
    }));
    let s = c.json(&["get", "sts", "web"]);
    assert_eq!(
        s["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.k8s.io/pause:3.9"
    );
    let revs = items(&c, &["get", "controllerrevisions"]);
    let old = revs.iter().find(|r| r["metadata"]["name"] == old_rev.as_str()).unwrap();
    assert_eq!(old["revision"], 3, "{revs:?}");

    // A deleted pod comes back under its name.
    let uid = pods_by_name(&c, "web")["web-1"]["metadata"]["uid"].clone();
    c.ok(&["delete", "pod", "web-1", "--wait=false"]);
    assert!(eventually(WAIT, || {
        pods_by_name(&c, "web")
            .get("web-1")
            .is_some_and(|p| p["metadata"]["uid"] != uid && ready(p))
    }));

    // So does a pod that failed.
    let uid = pods_by_name(&c, "web")["web-2"]["metadata"]["uid"].clone();
    c.ok(&[
        "patch",
        "pod",
        "web-2",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Failed"}}"#,
    ]);
    assert!(eventually(WAIT, || {
        pods_by_name(&c, "web")
            .get("web-2")
            .is_some_and(|p| p["metadata"]["uid"] != uid && ready(p))
    }));

    // Deleted leaving its pods (to change a field an update may not), then made again: the
    // new set adopts the pods and the history instead of replacing them.
    let uids: Vec<Value> = {
        let p = pods_by_name(&c, "web");
        ["web-0", "web-1", "web-2"].iter().map(|n| p[*n]["metadata"]["uid"].clone()).collect()
    };
    c.ok(&["delete", "sts", "web", "--cascade=orphan", "--timeout=60s"]);
    assert!(eventually(WAIT, || c.kubectl(&["get", "sts", "web"]).status.code() == Some(1)));
    c.apply(&manifest("web", 3, "").replace("storage: 1Gi", "storage: 2Gi"), &[]);
    let new_uid = c.json(&["get", "sts", "web"])["metadata"]["uid"].clone();
    assert!(eventually(WAIT, || {
        let p = pods_by_name(&c, "web");
        p.len() == 3 && p.values().all(|p| p["metadata"]["ownerReferences"][0]["uid"] == new_uid)
    }));
    let p = pods_by_name(&c, "web");
    let still: Vec<Value> =
        ["web-0", "web-1", "web-2"].iter().map(|n| p[*n]["metadata"]["uid"].clone()).collect();
    assert_eq!(still, uids, "the pods were adopted, not replaced");
    c.ok(&["rollout", "status", "sts/web", "--timeout=60s"]);
    let revs = items(&c, &["get", "controllerrevisions"]);
    assert!(revs.iter().all(|r| r["metadata"]["ownerReferences"][0]["uid"] == new_uid), "{revs:?}");
    assert_eq!(c.json(&["get", "sts", "web"])["status"]["currentRevision"], old_rev.as_str());

    // OnDelete: a new template waits until a pod is deleted.
    c.ok(&[
        "patch",
        "sts",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"updateStrategy":{"type":"OnDelete","rollingUpdate":null}}}"#,
    ]);
    c.ok(&["set", "image", "sts/web", "app=registry.k8s.io/pause:3.10"]);
    let mut update = String::new();
    assert!(eventually(WAIT, || {
        let s = c.json(&["get", "sts", "web"]);
        update = s["status"]["updateRevision"].as_str().unwrap_or("").to_owned();
        s["status"]["observedGeneration"] == s["metadata"]["generation"] && update != old_rev
    }));
    std::thread::sleep(Duration::from_secs(2));
    assert!(pods_by_name(&c, "web").values().all(|p| revision(p) == old_rev));
    let err = c.fails(&["rollout", "status", "sts/web", "--timeout=5s"]);
    assert!(err.contains("RollingUpdate"), "{err}");
    // Not `kubectl delete`'s own wait: the set makes web-1 again at once, and kubectl, when
    // its list already finds the new pod, waits for a deletion it has missed.
    let uid = pods_by_name(&c, "web")["web-1"]["metadata"]["uid"].clone();
    c.ok(&["delete", "pod", "web-1", "--wait=false"]);
    assert!(eventually(WAIT, || {
        pods_by_name(&c, "web")
            .get("web-1")
            .is_some_and(|p| p["metadata"]["uid"] != uid && ready(p) && revision(p) == update)
    }));
    let p = pods_by_name(&c, "web");
    assert_eq!((revision(&p["web-0"]), revision(&p["web-2"])), (old_rev.clone(), old_rev.clone()));

    // Deleting the set: pods and revisions go, claims stay.
    c.ok(&["delete", "sts", "web", "--timeout=60s"]);
    assert!(eventually(WAIT, || items(&c, &["get", "pods"]).is_empty()));
    assert!(eventually(WAIT, || items(&c, &["get", "controllerrevisions"]).is_empty()));
    assert_eq!(names(&items(&c, &["get", "pvc"])).len(), 3);
}

/// Asks the DNS server at `server` for the A records of `name`: the addresses, or None for a
/// name that does not exist.
async fn resolve(server: std::net::SocketAddr, name: &str) -> Option<Vec<std::net::Ipv4Addr>> {
    use hickory_proto::op::{Message, Query, ResponseCode};
    use hickory_proto::rr::{Name, RData, RecordType};
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).expect("a DNS name"), RecordType::A));
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("a UDP socket");
    socket.send_to(&m.to_vec().expect("encode"), server).await.expect("send");
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(2), socket.recv(&mut buf)).await.ok()?.ok()?;
    let reply = Message::from_vec(&buf[..n]).expect("a DNS message");
    if reply.metadata.response_code == ResponseCode::NXDomain {
        return None;
    }
    Some(
        reply
            .answers
            .iter()
            .filter_map(|r| match r.data {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect(),
    )
}

/// The cluster DNS server (as a node runs it, on a loopback address of its own) answers a
/// StatefulSet pod's own name under the set's headless Service with that pod's address.
async fn pods_resolve_under_their_service(b: Backend) {
    let _guard = watchdog("statefulset dns test", Duration::from_secs(240));
    let c = Cluster::new(b);
    let _nodes = SimNodes::start(&c, "sim", 1, &[]);
    c.apply(&manifest("web", 2, ""), &[]);
    c.ok(&["rollout", "status", "sts/web", "--timeout=60s"]);
    let pods = pods_by_name(&c, "web");
    let ip = |name: &str| -> std::net::Ipv4Addr {
        pods[name]["status"]["podIP"].as_str().expect("a pod IP").parse().expect("IPv4")
    };
    let client = orchestrator::kube::https::HttpsClient::from_kubeconfig(&c.kubeconfig)
        .expect("admin kubeconfig");
    let kube = orchestrator::kube::Kube::new(std::sync::Arc::new(client), "dns-test");
    // A loopback address no other test uses, so that port 53 is free.
    let octets = (std::process::id() % 250) as u8 + 1;
    let addr = std::net::Ipv4Addr::new(127, 53, octets, if b == Backend::Etcd { 2 } else { 1 });
    let resolv = c.write("resolv.conf", "");
    orchestrator::node::dns::start(kube, addr, &resolv);
    let server = std::net::SocketAddr::from((addr, 53));
    let fqdn = |host: &str| format!("{host}.web.default.svc.cluster.local.");
    let mut answered = None;
    for _ in 0..100 {
        answered = resolve(server, &fqdn("web-0")).await;
        if answered.as_ref().is_some_and(|a| !a.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(answered, Some(vec![ip("web-0")]), "web-0's own name");
    assert_eq!(resolve(server, &fqdn("web-1")).await, Some(vec![ip("web-1")]));
    let mut both = resolve(server, "web.default.svc.cluster.local.").await.expect("the service");
    both.sort();
    let mut want = vec![ip("web-0"), ip("web-1")];
    want.sort();
    assert_eq!(both, want, "the headless Service answers every pod");
    assert_eq!(resolve(server, &fqdn("web-7")).await, None, "no such pod");
}

/// The official Python client creates, reads, scales and deletes a StatefulSet as its models
/// expect (`tests/python/statefulsets.py`).
fn python_client_drives_a_statefulset(b: Backend) {
    let c = Cluster::new(b);
    let _nodes = SimNodes::start(&c, "sim", 1, &[]);
    let out = common::python::run("statefulsets.py", &c.kubeconfig, Duration::from_secs(180));
    assert!(out.contains("statefulset ok"), "{out}");
}

on_both_backends!(
    api_validation_defaults_and_cascade,
    scales_rolls_and_heals_in_order,
    python_client_drives_a_statefulset
);
on_both_backends_async!(pods_resolve_under_their_service);
