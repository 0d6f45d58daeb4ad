//! API semantics beyond plain CRUD: pagination, watch resumption and expiry, selectors on
//! watches, finalizers, propagation policies, namespace lifecycle, server-side apply
//! conflicts, and durability of acknowledged writes across SIGKILL.

mod common;

use std::time::Duration;

use common::{Backend, Cluster, DEPLOYMENT, admin, eventually, revision, settled};
use serde_json::{Value, json};

const CMS: &str = "/api/v1/namespaces/default/configmaps";

fn cm(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": {"k": "v"}})
}

async fn next_event(rx: &mut tokio::sync::mpsc::Receiver<Value>) -> Value {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a watch event in time")
        .expect("watch open")
}

/// The test's own objects: the namespace also holds what controllers publish in every
/// namespace (`kube-root-ca.crt`).
const PAGED: &str = "labelSelector=paged%3Dyes";

fn paged() -> Value {
    json!({"paged": "yes"})
}

async fn pagination_is_consistent(b: Backend) {
    let c = Cluster::new(b);
    let mut conn = admin(&c).await;
    for i in 0..7 {
        assert_eq!(
            conn.send_json("POST", CMS, &cm(&format!("cm-{i}"), paged())).await.unwrap().status,
            201
        );
    }
    let mut names = Vec::new();
    let mut path = format!("{CMS}?limit=3&{PAGED}");
    let mut pages = 0;
    loop {
        let page = conn.get(&path).await.unwrap().json();
        pages += 1;
        names.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["metadata"]["name"].as_str().unwrap().to_owned()),
        );
        if pages == 1 {
            // Written after the first page: not part of this list.
            conn.send_json("POST", CMS, &cm("cm-9-late", paged())).await.unwrap();
        }
        match page["metadata"]["continue"].as_str() {
            Some(tok) => path = format!("{CMS}?limit=3&{PAGED}&continue={tok}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names, (0..7).map(|i| format!("cm-{i}")).collect::<Vec<_>>());
    let all = c.ok(&["get", "configmaps", "-l", "paged=yes", "--chunk-size=2", "-o", "name"]);
    assert_eq!(all.lines().count(), 8, "{all}");
    let bad = conn.get(&format!("{CMS}?limit=2&continue=garbage")).await.unwrap();
    assert_eq!(bad.status, 400);
}

async fn watches_resume_filter_and_expire(b: Backend) {
    let c = Cluster::start_with(b, &["--compact-interval", "1"]);
    let config =
        orchestrator::kube::connection::ConnectionConfig::from_kubeconfig(&c.kubeconfig).unwrap();
    let mut conn = admin(&c).await;
    let start = revision(&mut conn).await;
    let mut w = config
        .connect()
        .await
        .unwrap()
        .watch(&format!("{CMS}?watch=1&resourceVersion={start}&labelSelector=app%3Dweb"))
        .await
        .unwrap();
    let a = conn.send_json("POST", CMS, &cm("a", json!({"app": "web"}))).await.unwrap().json();
    conn.send_json("POST", CMS, &cm("b", json!({"app": "db"}))).await.unwrap();
    let patch =
        |labels: Value| serde_json::to_vec(&json!({"metadata": {"labels": labels}})).unwrap();
    conn.request(
        "PATCH",
        &format!("{CMS}/a"),
        Some("application/merge-patch+json"),
        patch(json!({"x": "1"})),
    )
    .await
    .unwrap();
    conn.request(
        "PATCH",
        &format!("{CMS}/b"),
        Some("application/merge-patch+json"),
        patch(json!({"app": "web"})),
    )
    .await
    .unwrap();
    conn.request(
        "PATCH",
        &format!("{CMS}/a"),
        Some("application/merge-patch+json"),
        patch(json!({"app": "db"})),
    )
    .await
    .unwrap();
    let seen: Vec<(String, String)> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            let e = next_event(&mut w).await;
            v.push((
                e["type"].as_str().unwrap().to_owned(),
                e["object"]["metadata"]["name"].as_str().unwrap().to_owned(),
            ));
        }
        v
    };
    let pairs: Vec<(&str, &str)> = seen.iter().map(|(t, n)| (t.as_str(), n.as_str())).collect();
    assert_eq!(pairs, [("ADDED", "a"), ("MODIFIED", "a"), ("ADDED", "b"), ("DELETED", "a")]);

    // Resuming from a revision replays what followed it.
    let from = a["metadata"]["resourceVersion"].as_str().unwrap();
    let mut replay = config
        .connect()
        .await
        .unwrap()
        .watch(&format!("{CMS}?watch=1&resourceVersion={from}&labelSelector=app"))
        .await
        .unwrap();
    let e = next_event(&mut replay).await;
    assert_eq!(
        (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
        (Some("ADDED"), Some("b"))
    );

    // Once compacted (every second here), that revision is gone: 410 Expired.
    let expired = eventually(Duration::from_secs(10), || {
        let config = config.clone();
        let from = from.to_owned();
        std::thread::spawn(move || {
            tokio::runtime::Runtime::new().unwrap().block_on(async move {
                let mut rx = config
                    .connect()
                    .await
                    .unwrap()
                    .watch(&format!("{CMS}?watch=1&resourceVersion={from}"))
                    .await
                    .unwrap();
                let e = next_event(&mut rx).await;
                e["type"] == "ERROR" && e["object"]["code"] == 410
            })
        })
        .join()
        .unwrap()
    });
    assert!(expired, "an old resourceVersion expires after compaction");
}

async fn finalizers_hold_deletion_until_removed(b: Backend) {
    let c = Cluster::new(b);
    let mut conn = admin(&c).await;
    let mut obj = cm("held", json!({}));
    obj["metadata"]["finalizers"] = json!(["example.com/keep"]);
    conn.send_json("POST", CMS, &obj).await.unwrap();
    let r = conn.request("DELETE", &format!("{CMS}/held"), None, Vec::new()).await.unwrap();
    assert_eq!(r.status, 200);
    let held = conn.get(&format!("{CMS}/held")).await.unwrap().json();
    assert!(held["metadata"]["deletionTimestamp"].is_string(), "{held}");
    let body = serde_json::to_vec(&json!({"metadata": {"finalizers": null}})).unwrap();
    let r = conn
        .request("PATCH", &format!("{CMS}/held"), Some("application/merge-patch+json"), body)
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(conn.get(&format!("{CMS}/held")).await.unwrap().status, 404);
}

fn owned_replicaset(c: &Cluster, name: &str) {
    let uid = c.json(&["get", "deployment", "web"])["metadata"]["uid"].as_str().unwrap().to_owned();
    c.apply(
        &format!(
            "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: {name}\n  ownerReferences: [{{apiVersion: apps/v1, kind: Deployment, name: web, uid: {uid}, controller: true, blockOwnerDeletion: true}}]\nspec:\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec: {{containers: [{{name: c, image: busybox}}]}}\n"
        ),
        &[],
    );
}

fn orphan_and_foreground_propagation(b: Backend) {
    let c = Cluster::new(b);
    c.apply(DEPLOYMENT, &[]);
    owned_replicaset(&c, "web-orphan");
    c.ok(&["delete", "deployment", "web", "--cascade=orphan"]);
    assert!(eventually(Duration::from_secs(10), || !c
        .kubectl(&["get", "deployment", "web"])
        .status
        .success()));
    let rs = c.json(&["get", "replicaset", "web-orphan"]);
    assert!(
        rs["metadata"]["ownerReferences"].as_array().is_none_or(|a| a.is_empty()),
        "orphaned: {rs}"
    );

    c.apply(DEPLOYMENT, &[]);
    owned_replicaset(&c, "web-fg");
    c.ok(&["delete", "deployment", "web", "--cascade=foreground"]);
    assert!(eventually(Duration::from_secs(10), || {
        !c.kubectl(&["get", "deployment", "web"]).status.success()
            && !c.kubectl(&["get", "replicaset", "web-fg"]).status.success()
    }));
    assert!(c.kubectl(&["get", "replicaset", "web-orphan"]).status.success(), "the orphan stays");
}

fn namespace_lifecycle(b: Backend) {
    let c = Cluster::new(b);
    c.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n", &[]);
    c.apply(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: team}\ndata: {a: b}\n",
        &[],
    );
    c.apply(&DEPLOYMENT.replace("name: web\n", "name: web\n  namespace: team\n"), &[]);
    c.ok(&["delete", "namespace", "team", "--wait=false"]);
    assert!(
        eventually(Duration::from_secs(15), || !c
            .kubectl(&["get", "namespace", "team"])
            .status
            .success()),
        "the namespace goes away"
    );
    assert!(c.ok(&["get", "configmaps,deployments", "-n", "team", "-o", "name"]).trim().is_empty());
    let f = c.write(
        "missing.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-y, namespace: missing}\n",
    );
    let err = c.fails(&["apply", "-f", f.to_str().unwrap()]);
    assert!(err.contains("NotFound") || err.contains("not found"), "{err}");
}

fn server_side_apply_conflicts_unless_forced(b: Backend) {
    let c = Cluster::new(b);
    c.apply(DEPLOYMENT, &["--server-side", "--field-manager=team-a"]);
    c.ok(&["scale", "deployment", "web", "--replicas=5"]);
    let f = c.write("ssa.yaml", DEPLOYMENT);
    let f = f.to_str().unwrap();
    let err = c.fails(&["apply", "--server-side", "--field-manager=team-a", "-f", f]);
    assert!(err.contains("conflict") && err.contains(".spec.replicas"), "{err}");
    assert_eq!(
        c.json(&["get", "deployment", "web"])["spec"]["replicas"],
        5,
        "unchanged by the refused apply"
    );
    c.ok(&["apply", "--server-side", "--field-manager=team-a", "--force-conflicts", "-f", f]);
    let d = c.json(&["get", "deployment", "web", "--show-managed-fields"]);
    assert_eq!(d["spec"]["replicas"], 2);
    let managers: Vec<&str> = d["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert!(managers.contains(&"team-a"), "{managers:?}");
    // Dropping a field from the applied config removes it.
    std::fs::write(f, DEPLOYMENT.replace("  labels: {app: web}\nspec:", "spec:")).unwrap();
    c.ok(&["apply", "--server-side", "--field-manager=team-a", "-f", f]);
    assert!(c.json(&["get", "deployment", "web"])["metadata"]["labels"].get("app").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    // The embedded store's durability; etcd's is etcd's own.
    let c = Cluster::new(Backend::Embedded);
    let config =
        orchestrator::kube::connection::ConnectionConfig::from_kubeconfig(&c.kubeconfig).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    for w in 0..16 {
        let (config, tx) = (config.clone(), tx.clone());
        tokio::spawn(async move {
            let Ok(mut conn) = config.connect().await else { return };
            for i in 0.. {
                let name = format!("w{w}-{i}");
                match conn.send_json("POST", CMS, &cm(&name, json!({}))).await {
                    Ok(r) if r.status == 201 => {
                        if tx.send(name).is_err() {
                            return;
                        }
                    }
                    _ => return,
                }
            }
        });
    }
    drop(tx);
    let mut acked = Vec::new();
    while acked.len() < 300 {
        acked.push(rx.recv().await.expect("writes are acknowledged"));
    }
    // SIGKILL in the middle of the burst.
    let dir = c.stop();
    while let Ok(n) = rx.try_recv() {
        acked.push(n);
    }
    let c = Cluster::start_in(dir, &[]);
    let mut conn = admin(&c).await;
    let list = conn.get(CMS).await.unwrap().json();
    let stored: std::collections::HashSet<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    let lost: Vec<&String> = acked.iter().filter(|n| !stored.contains(n.as_str())).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost: {lost:?}",
        lost.len(),
        acked.len()
    );
}

fn pods_on_a_node_delete_gracefully(b: Backend) {
    let c = Cluster::new(b);
    let pod = |name: &str, node: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  nodeName: \"{node}\"\n  containers: [{{name: c, image: busybox}}]\n"
        )
    };
    c.apply(&pod("bound", "node-1"), &[]);
    c.apply(&pod("unbound", ""), &[]);
    c.ok(&["delete", "pod", "unbound"]);
    assert!(
        !c.kubectl(&["get", "pod", "unbound"]).status.success(),
        "an unscheduled pod goes at once"
    );
    c.ok(&["delete", "pod", "bound", "--wait=false"]);
    let p = c.json(&["get", "pod", "bound"]);
    assert_eq!(p["metadata"]["deletionGracePeriodSeconds"], 30, "{p}");
    assert!(c.ok(&["get", "pod", "bound"]).contains("Terminating"));
    c.ok(&["delete", "pod", "bound", "--grace-period=0", "--force"]);
    assert!(!c.kubectl(&["get", "pod", "bound"]).status.success());
}

async fn deletecollection_and_watch_timeout(b: Backend) {
    let c = Cluster::new(b);
    let mut conn = admin(&c).await;
    settled(&mut conn).await;
    for (name, labels) in [
        ("a", json!({"x": "1"})),
        ("b", json!({"x": "1"})),
        ("c", json!({"x": "1"})),
        ("d", json!({})),
    ] {
        conn.send_json("POST", CMS, &cm(name, labels)).await.unwrap();
    }
    let r = conn
        .request("DELETE", &format!("{CMS}?labelSelector=x%3D1"), None, Vec::new())
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["items"].as_array().map(Vec::len), Some(3));
    let left = conn.get(CMS).await.unwrap().json();
    let names: Vec<&str> = left["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        // The namespace's own CA map is not the test's.
        .filter(|n| *n != "kube-root-ca.crt")
        .collect();
    assert_eq!(names, ["d"]);

    let config =
        orchestrator::kube::connection::ConnectionConfig::from_kubeconfig(&c.kubeconfig).unwrap();
    let rv = revision(&mut conn).await;
    let mut w = config
        .connect()
        .await
        .unwrap()
        .watch(&format!("{CMS}?watch=1&resourceVersion={rv}&timeoutSeconds=1"))
        .await
        .unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), w.recv())
        .await
        .expect("the watch ends by itself");
    assert!(ended.is_none(), "no events, then the end of the stream");
}

on_both_backends!(
    pods_on_a_node_delete_gracefully,
    orphan_and_foreground_propagation,
    namespace_lifecycle,
    server_side_apply_conflicts_unless_forced
);

on_both_backends_async!(
    deletecollection_and_watch_timeout,
    pagination_is_consistent,
    watches_resume_filter_and_expire,
    finalizers_hold_deletion_until_removed
);
