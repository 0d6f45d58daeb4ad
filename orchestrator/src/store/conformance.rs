//! The behaviour every backend must show, run against each of them.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use super::{EventKind, ListOptions, Store, StoreError, WatchStream};

async fn next(w: &mut WatchStream) -> super::WatchEvent {
    tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .expect("watch event in time")
        .expect("watch open")
        .expect("watch event")
}

/// Runs the whole contract against `store` (which must be empty).
pub async fn run(store: Arc<dyn Store>) {
    crud_and_cas(&*store).await;
    lists(&*store).await;
    watches(&*store).await;
    compaction(&*store).await;
    concurrent_writes(store).await;
}

async fn crud_and_cas(s: &dyn Store) {
    let a = s.create("/t/crud/a", b"1".to_vec()).await.unwrap();
    assert_eq!(a.create_revision, a.mod_revision);
    assert_eq!(s.current_revision().await.unwrap(), a.mod_revision);
    assert!(matches!(s.create("/t/crud/a", b"x".to_vec()).await, Err(StoreError::AlreadyExists)));
    assert_eq!(s.get("/t/crud/a").await.unwrap().unwrap().value, b"1");

    let b = s.update("/t/crud/a", b"2".to_vec(), a.mod_revision).await.unwrap();
    assert!(b.mod_revision > a.mod_revision);
    assert_eq!(b.create_revision, a.create_revision);
    match s.update("/t/crud/a", b"3".to_vec(), a.mod_revision).await {
        Err(StoreError::Conflict { current }) => assert_eq!(current.value, b"2"),
        other => panic!("stale update: {other:?}"),
    }
    assert!(matches!(s.update("/t/crud/none", b"3".to_vec(), 1).await, Err(StoreError::NotFound)));
    assert!(matches!(
        s.delete("/t/crud/a", Some(a.mod_revision)).await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(s.get("/t/crud/a").await.unwrap().unwrap().value, b"2");

    let gone = s.delete("/t/crud/a", Some(b.mod_revision)).await.unwrap();
    assert_eq!(gone.value, b"2");
    assert!(gone.mod_revision > b.mod_revision);
    assert!(s.get("/t/crud/a").await.unwrap().is_none());
    assert!(matches!(s.delete("/t/crud/a", None).await, Err(StoreError::NotFound)));
}

async fn lists(s: &dyn Store) {
    for k in ["c", "a", "b", "d"] {
        s.create(&format!("/t/list/{k}"), k.as_bytes().to_vec()).await.unwrap();
    }
    s.create("/t/listx", b"outside".to_vec()).await.unwrap();
    let all = s.list("/t/list/", ListOptions::default()).await.unwrap();
    let keys: Vec<_> = all.items.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/t/list/a", "/t/list/b", "/t/list/c", "/t/list/d"]);
    assert!(!all.more);

    // Pages read at the first page's revision don't see later writes.
    let p1 = s.list("/t/list/", ListOptions { limit: 2, ..Default::default() }).await.unwrap();
    assert!(p1.more);
    assert_eq!(p1.items.len(), 2);
    s.create("/t/list/bb", b"new".to_vec()).await.unwrap();
    let c = s.get("/t/list/c").await.unwrap().unwrap();
    s.delete("/t/list/c", Some(c.mod_revision)).await.unwrap();
    let d = s.get("/t/list/d").await.unwrap().unwrap();
    s.update("/t/list/d", b"d2".to_vec(), d.mod_revision).await.unwrap();
    let start = format!("{}\0", p1.items[1].key);
    let p2 = s
        .list("/t/list/", ListOptions { limit: 2, start: Some(start), revision: Some(p1.revision) })
        .await
        .unwrap();
    let page2: Vec<_> = p2.items.iter().map(|kv| (kv.key.as_str(), kv.value.as_slice())).collect();
    assert_eq!(page2, [("/t/list/c", &b"c"[..]), ("/t/list/d", &b"d"[..])]);
    assert_eq!(p2.revision, p1.revision);

    let now = s.list("/t/list/", ListOptions::default()).await.unwrap();
    let keys: Vec<_> = now.items.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/t/list/a", "/t/list/b", "/t/list/bb", "/t/list/d"]);
    let future = now.revision + 100;
    assert!(matches!(
        s.list("/t/list/", ListOptions { revision: Some(future), ..Default::default() }).await,
        Err(StoreError::FutureRevision(_))
    ));
}

async fn watches(s: &dyn Store) {
    let start = s.current_revision().await.unwrap();
    let mut live = s.watch("/t/watch/", start).await.unwrap();
    let a = s.create("/t/watch/a", b"1".to_vec()).await.unwrap();
    s.create("/t/other", b"x".to_vec()).await.unwrap();
    let a2 = s.update("/t/watch/a", b"2".to_vec(), a.mod_revision).await.unwrap();
    let gone = s.delete("/t/watch/a", None).await.unwrap();

    let mut replay = s.watch("/t/watch/", start).await.unwrap();
    for w in [&mut live, &mut replay] {
        let e1 = next(w).await;
        assert_eq!(
            (e1.kind, e1.kv.mod_revision, e1.prev.is_none()),
            (EventKind::Put, a.mod_revision, true)
        );
        let e2 = next(w).await;
        assert_eq!((e2.kind, e2.kv.value.as_slice()), (EventKind::Put, &b"2"[..]));
        assert_eq!(e2.prev.unwrap().value, b"1");
        let e3 = next(w).await;
        assert_eq!((e3.kind, e3.kv.mod_revision), (EventKind::Delete, gone.mod_revision));
        assert_eq!(e3.prev.unwrap().mod_revision, a2.mod_revision);
    }
    // Watching from the middle skips what came before.
    let mut mid = s.watch("/t/watch/", a2.mod_revision).await.unwrap();
    assert_eq!(next(&mut mid).await.kind, EventKind::Delete);
}

async fn compaction(s: &dyn Store) {
    let x = s.create("/t/compact/x", b"1".to_vec()).await.unwrap();
    let y = s.update("/t/compact/x", b"2".to_vec(), x.mod_revision).await.unwrap();
    s.compact(y.mod_revision).await.unwrap();
    assert!(matches!(
        s.watch("/t/compact/", x.mod_revision).await,
        Err(StoreError::Compacted { .. })
    ));
    assert!(matches!(
        s.list("/t/compact/", ListOptions { revision: Some(x.mod_revision), ..Default::default() })
            .await,
        Err(StoreError::Compacted { .. })
    ));
    let mut w = s.watch("/t/compact/", y.mod_revision).await.unwrap();
    s.update("/t/compact/x", b"3".to_vec(), y.mod_revision).await.unwrap();
    assert_eq!(next(&mut w).await.kv.value, b"3");
    assert_eq!(s.get("/t/compact/x").await.unwrap().unwrap().value, b"3");
}

async fn concurrent_writes(s: Arc<dyn Store>) {
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.create(&format!("/t/conc/{i:03}"), vec![b'v']).await.unwrap().mod_revision
            })
        })
        .collect();
    let mut revs = Vec::new();
    for t in tasks {
        revs.push(t.await.unwrap());
    }
    revs.sort();
    revs.dedup();
    assert_eq!(revs.len(), 200, "every write gets its own revision");
    let list = s.list("/t/conc/", ListOptions::default()).await.unwrap();
    assert_eq!(list.items.len(), 200);
    assert_eq!(list.revision, s.current_revision().await.unwrap());
}
