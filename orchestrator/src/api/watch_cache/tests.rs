//! The cache's bookkeeping without a store: pages, windows, compaction and refills.

use serde_json::json;

use super::*;

const CMS: &str = "/registry/core/configmaps/";

fn obj(ns: &str, name: &str, rev: Revision) -> CachedObject {
    let key = format!("{CMS}{ns}/{name}");
    CachedObject::new(key, rev, json!({"metadata": {"name": name, "namespace": ns}}))
}

fn names(page: &Page) -> Vec<&str> {
    page.items.iter().map(|o| o.value["metadata"]["name"].as_str().unwrap()).collect()
}

#[test]
fn kind_prefixes() {
    assert_eq!(kind_prefix("/registry/core/pods/ns/a"), Some("/registry/core/pods/"));
    assert_eq!(kind_prefix("/registry/apps/deployments/"), Some("/registry/apps/deployments/"));
    assert_eq!(kind_prefix("/registry/core/nodes/n1"), Some("/registry/core/nodes/"));
    assert_eq!(kind_prefix("/registry/core"), None);
    assert_eq!(kind_prefix("/other/x/y/"), None);
}

#[test]
fn pages_follow_key_order_within_the_prefix() {
    let c = WatchCache::new();
    assert!(c.list(CMS, None, 0, None, |_| true).is_none(), "not filled: no answer");
    c.fill(vec![obj("a", "x", 2), obj("b", "y", 3), obj("b", "z", 4), obj("c", "w", 5)], 5);
    let all = c.list(CMS, None, 0, None, |_| true).unwrap();
    assert_eq!((names(&all), all.revision, all.next.clone()), (vec!["x", "y", "z", "w"], 5, None));
    let ns_b = format!("{CMS}b/");
    let first = c.list(&ns_b, None, 1, None, |_| true).unwrap();
    assert_eq!(names(&first), ["y"]);
    let next = first.next.clone().unwrap();
    let second = c.list(&ns_b, Some(&next), 1, Some(5), |_| true).unwrap();
    assert_eq!((names(&second), second.next.clone()), (vec!["z"], None));
    assert!(c.list(&ns_b, Some(&next), 1, Some(4), |_| true).is_none(), "not at revision 4");
    let odd = c.list(CMS, None, 0, None, |o| o.revision % 2 == 1).unwrap();
    assert_eq!(names(&odd), ["y", "w"]);
}

#[test]
fn windows_replay_changes_and_forget_compacted_history() {
    let c = WatchCache::new();
    c.fill(vec![obj("a", "x", 2)], 10);
    let generation = c.generation().unwrap();
    c.apply(EventKind::Put, obj("a", "x", 11));
    c.apply(EventKind::Put, obj("b", "y", 12));
    c.apply(EventKind::Delete, obj("a", "x", 13));
    assert_eq!(c.revision(), Some(13));
    let all = c.events_after(CMS, 10, generation, 100).unwrap();
    let seen: Vec<_> =
        all.events.iter().map(|e| (e.kind, e.revision(), e.prev.is_some())).collect();
    assert_eq!(
        seen,
        [(EventKind::Put, 11, true), (EventKind::Put, 12, false), (EventKind::Delete, 13, true)]
    );
    assert_eq!(all.upto, 13);
    let in_b = c.events_after(&format!("{CMS}b/"), 11, generation, 100).unwrap();
    assert_eq!(in_b.events.len(), 1);
    let capped = c.events_after(CMS, 10, generation, 1).unwrap();
    assert_eq!((capped.events.len(), capped.upto), (1, 11));
    // Before the fill: the window cannot say what happened.
    assert!(matches!(c.events_after(CMS, 9, generation, 1), Err(WindowError::TooOld)));
    // Another kind without events: nothing since the fill.
    let pods = c.events_after("/registry/core/pods/", 10, generation, 1).unwrap();
    assert_eq!((pods.events.len(), pods.upto), (0, 13));

    c.compacted(12);
    assert!(matches!(c.events_after(CMS, 11, generation, 9), Err(WindowError::TooOld)));
    assert_eq!(c.events_after(CMS, 12, generation, 9).unwrap().events.len(), 1);
    assert!(matches!(
        c.events_after("/registry/core/pods/", 11, generation, 1),
        Err(WindowError::TooOld)
    ));

    c.fill(Vec::new(), 20);
    assert!(matches!(c.events_after(CMS, 13, generation, 1), Err(WindowError::Refilled)));
    c.clear();
    assert!(c.revision().is_none());
    assert!(matches!(c.events_after(CMS, 20, generation + 1, 1), Err(WindowError::NotReady)));
}

#[tokio::test]
async fn waits_until_the_revision_is_applied() {
    let c = WatchCache::new();
    c.fill(Vec::new(), 5);
    assert_eq!(c.wait_for(5, Duration::from_millis(10)).await, Some(5));
    assert_eq!(c.wait_for(6, Duration::from_millis(10)).await, None);
    let c2 = c.clone();
    let waiter = tokio::spawn(async move { c2.wait_for(7, Duration::from_secs(10)).await });
    c.apply(EventKind::Put, obj("a", "x", 6));
    c.apply(EventKind::Put, obj("a", "y", 7));
    assert_eq!(waiter.await.unwrap(), Some(7));
}
