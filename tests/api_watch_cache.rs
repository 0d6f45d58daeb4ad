//! The watch cache behind lists and watches: a write acknowledged to one client is in the
//! next consistent list of any other client, even with many writers at once;
//! `resourceVersion` semantics of lists (""/0/NotOlderThan/Exact); watches started from a
//! revision the cache holds; and `/metrics` showing the lists the cache answered.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, Cluster, admin, watchdog};
use orchestrator::kube::connection::{Connection, ConnectionConfig};
use serde_json::{Value, json};

const CMS: &str = "/api/v1/namespaces/default/configmaps";

fn cm(name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "labels": {"cache-test": "yes"}}, "data": {"v": value}})
}

fn rv_of(v: &Value) -> i64 {
    v["metadata"]["resourceVersion"].as_str().and_then(|s| s.parse().ok()).expect("resourceVersion")
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["metadata"]["name"].as_str().expect("name").to_owned())
        .collect()
}

/// Lists served by the cache and by the store so far, from `/metrics`.
async fn list_sources(conn: &mut Connection) -> (u64, u64) {
    let text =
        String::from_utf8_lossy(&conn.get("/metrics").await.expect("metrics").body).into_owned();
    let count = |source: &str| {
        let prefix = format!("apiserver_watch_cache_lists_total{{source=\"{source}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in /metrics:\n{text}"))
    };
    (count("cache"), count("store"))
}

/// Waits until the cache answers lists (it fills right after the server starts).
async fn cache_ready(conn: &mut Connection) {
    for _ in 0..100 {
        let before = list_sources(conn).await.0;
        conn.get(CMS).await.expect("list");
        if list_sources(conn).await.0 > before {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the watch cache never answered a list");
}

async fn concurrent_writers_read_their_writes(b: Backend) {
    let _dog = watchdog("concurrent_writers_read_their_writes", Duration::from_secs(180));
    let c = Cluster::new(b);
    let config = ConnectionConfig::from_kubeconfig(&c.kubeconfig).expect("kubeconfig");
    let mut conn = admin(&c).await;
    cache_ready(&mut conn).await;
    let (cached_before, stored_before) = list_sources(&mut conn).await;
    const WRITERS: usize = 8;
    const ROUNDS: usize = 15;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let config = config.clone();
        tasks.push(tokio::spawn(async move {
            // One client writes, another one (its own connection) lists right after.
            let mut writer = config.connect().await.expect("connect");
            let mut reader = config.connect().await.expect("connect");
            let name = format!("rw-{w}");
            let mut last = None;
            for round in 0..ROUNDS {
                let r = if round == 0 {
                    writer.send_json("POST", CMS, &cm(&name, "0")).await.expect("create")
                } else {
                    writer
                        .send_json("PUT", &format!("{CMS}/{name}"), &cm(&name, &round.to_string()))
                        .await
                        .expect("update")
                };
                assert!(matches!(r.status, 200 | 201), "write answered {}", r.status);
                let written = rv_of(&r.json());
                let list = reader
                    .get(&format!("{CMS}?labelSelector=cache-test%3Dyes"))
                    .await
                    .expect("list")
                    .json();
                assert!(
                    rv_of(&list) >= written,
                    "list at {} after a write at {written}",
                    rv_of(&list)
                );
                let mine = list["items"]
                    .as_array()
                    .expect("items")
                    .iter()
                    .find(|i| i["metadata"]["name"] == name.as_str())
                    .unwrap_or_else(|| panic!("{name} missing from a list after its creation"));
                assert_eq!(mine["data"]["v"], round.to_string(), "a stale {name} listed");
                assert_eq!(rv_of(mine), written);
                last = Some(written);
            }
            last.expect("wrote")
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    let (cached, stored) = list_sources(&mut conn).await;
    assert!(
        cached >= cached_before + (WRITERS * ROUNDS) as u64,
        "lists from the cache: {cached_before} -> {cached}"
    );
    assert_eq!(stored, stored_before, "consistent lists fell back to the store");
}

async fn resource_version_semantics_of_lists(b: Backend) {
    let _dog = watchdog("resource_version_semantics_of_lists", Duration::from_secs(120));
    let c = Cluster::new(b);
    let mut conn = admin(&c).await;
    cache_ready(&mut conn).await;
    let sel = "labelSelector=cache-test%3Dyes";
    let a = conn.send_json("POST", CMS, &cm("a", "1")).await.expect("create").json();
    let at_a = rv_of(&a);
    let b_obj = conn.send_json("POST", CMS, &cm("b", "1")).await.expect("create").json();

    // "": the newest state, with every acknowledged write.
    let newest = conn.get(&format!("{CMS}?{sel}")).await.expect("list").json();
    assert_eq!(names(&newest), ["a", "b"]);
    assert!(rv_of(&newest) >= rv_of(&b_obj));

    // "0": any state the server has at hand; it is a state that existed, no newer than now.
    let any = conn.get(&format!("{CMS}?{sel}&resourceVersion=0")).await.expect("list");
    assert_eq!(any.status, 200);
    let any = any.json();
    assert!(rv_of(&any) > 0);
    for item in any["items"].as_array().expect("items") {
        assert!(rv_of(item) <= rv_of(&any), "an item newer than its list");
    }

    // Exact: the state at that revision, before b existed.
    let exact = conn
        .get(&format!("{CMS}?{sel}&resourceVersion={at_a}&resourceVersionMatch=Exact"))
        .await
        .expect("list")
        .json();
    assert_eq!(names(&exact), ["a"]);
    assert_eq!(rv_of(&exact), at_a);
    // A paginated list at a revision reads exactly that revision too.
    let paged = conn
        .get(&format!("{CMS}?{sel}&resourceVersion={at_a}&limit=5"))
        .await
        .expect("list")
        .json();
    assert_eq!(names(&paged), ["a"]);

    // NotOlderThan: at least that revision (here: the newest).
    let not_older = conn
        .get(&format!("{CMS}?{sel}&resourceVersion={at_a}&resourceVersionMatch=NotOlderThan"))
        .await
        .expect("list")
        .json();
    assert!(rv_of(&not_older) >= at_a);
    assert_eq!(names(&not_older), ["a", "b"]);

    // A revision the server has not reached: 504 after a bounded wait.
    let future = rv_of(&newest) + 1_000_000;
    let started = Instant::now();
    let r = conn.get(&format!("{CMS}?{sel}&resourceVersion={future}")).await.expect("list");
    assert_eq!(r.status, 504, "{}", String::from_utf8_lossy(&r.body));
    assert!(started.elapsed() < Duration::from_secs(30));

    // Invalid combinations, as Kubernetes refuses them.
    for q in [
        "resourceVersionMatch=Exact",
        "resourceVersion=0&resourceVersionMatch=Exact",
        "resourceVersion=5&resourceVersionMatch=Sometime",
        "resourceVersion=abc",
    ] {
        let r = conn.get(&format!("{CMS}?{q}")).await.expect("list");
        assert_eq!(r.status, 400, "{q}: {}", String::from_utf8_lossy(&r.body));
    }

    // Pages stay consistent while objects change between them.
    for i in 0..5 {
        conn.send_json("POST", CMS, &cm(&format!("p{i}"), "1")).await.expect("create");
    }
    let first = conn.get(&format!("{CMS}?{sel}&limit=3")).await.expect("list").json();
    assert_eq!(names(&first), ["a", "b", "p0"]);
    conn.request("DELETE", &format!("{CMS}/p3"), None, Vec::new()).await.expect("delete");
    conn.send_json("POST", CMS, &cm("p5", "1")).await.expect("create");
    let token = first["metadata"]["continue"].as_str().expect("a continue token");
    let second =
        conn.get(&format!("{CMS}?{sel}&limit=10&continue={token}")).await.expect("list").json();
    assert_eq!(
        names(&second),
        ["p1", "p2", "p3", "p4"],
        "the page reads the first page's revision"
    );
    assert_eq!(rv_of(&second), rv_of(&first));
    let bad = conn.get(&format!("{CMS}?limit=3&continue={token}&resourceVersion=5")).await;
    assert_eq!(bad.expect("list").status, 400);
}

async fn next_event(rx: &mut tokio::sync::mpsc::Receiver<Value>) -> Value {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a watch event in time")
        .expect("watch open")
}

async fn watches_start_from_cached_revisions(b: Backend) {
    let _dog = watchdog("watches_start_from_cached_revisions", Duration::from_secs(120));
    let c = Cluster::new(b);
    let config = ConnectionConfig::from_kubeconfig(&c.kubeconfig).expect("kubeconfig");
    let mut conn = admin(&c).await;
    cache_ready(&mut conn).await;
    let sel = "labelSelector=cache-test%3Dyes";
    let x = conn.send_json("POST", CMS, &cm("x", "1")).await.expect("create").json();
    conn.send_json("PUT", &format!("{CMS}/x"), &cm("x", "2")).await.expect("update");
    conn.send_json("POST", CMS, &cm("y", "1")).await.expect("create");
    conn.request("DELETE", &format!("{CMS}/x"), None, Vec::new()).await.expect("delete");

    // From x's creation: exactly what followed, in order.
    let mut w = config
        .connect()
        .await
        .expect("connect")
        .watch(&format!("{CMS}?watch=1&{sel}&resourceVersion={}", rv_of(&x)))
        .await
        .expect("watch");
    let mut seen = Vec::new();
    let mut last = rv_of(&x);
    for _ in 0..3 {
        let e = next_event(&mut w).await;
        let rv = rv_of(&e["object"]);
        assert!(rv > last, "events in revision order");
        last = rv;
        seen.push((
            e["type"].as_str().expect("type").to_owned(),
            e["object"]["metadata"]["name"].as_str().expect("name").to_owned(),
            e["object"]["data"]["v"].as_str().unwrap_or("").to_owned(),
        ));
    }
    let seen: Vec<(&str, &str, &str)> =
        seen.iter().map(|(t, n, v)| (t.as_str(), n.as_str(), v.as_str())).collect();
    assert_eq!(seen, [("MODIFIED", "x", "2"), ("ADDED", "y", "1"), ("DELETED", "x", "2")]);
    // Then live events.
    conn.send_json("POST", CMS, &cm("z", "1")).await.expect("create");
    let e = next_event(&mut w).await;
    assert_eq!(
        (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
        (Some("ADDED"), Some("z"))
    );

    // "0" and "": the current state as ADDED events first, then changes.
    for rv in ["0", ""] {
        let mut w = config
            .connect()
            .await
            .expect("connect")
            .watch(&format!("{CMS}?watch=1&{sel}&resourceVersion={rv}"))
            .await
            .expect("watch");
        let mut initial = Vec::new();
        for _ in 0..2 {
            let e = next_event(&mut w).await;
            assert_eq!(e["type"], "ADDED");
            initial.push(e["object"]["metadata"]["name"].as_str().expect("name").to_owned());
        }
        initial.sort();
        assert_eq!(initial, ["y", "z"], "resourceVersion={rv:?}");
        conn.send_json("PUT", &format!("{CMS}/y"), &cm("y", rv)).await.expect("update");
        let e = next_event(&mut w).await;
        assert_eq!(
            (e["type"].as_str(), e["object"]["data"]["v"].as_str()),
            (Some("MODIFIED"), Some(rv))
        );
    }
    let r = conn
        .get(&format!("{CMS}?watch=1&resourceVersionMatch=NotOlderThan&resourceVersion=1"))
        .await;
    assert_eq!(r.expect("watch").status, 400);
}

on_both_backends_async!(
    concurrent_writers_read_their_writes,
    resource_version_semantics_of_lists,
    watches_start_from_cached_revisions
);
