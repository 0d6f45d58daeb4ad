//! The API server driven by the official Kubernetes Python client (`tests/python/`), on both
//! stores: what clients outside the Rust ecosystem send and expect.

mod common;

use std::time::Duration;

use common::{Backend, Cluster, python};

/// Eight writers patching one object, deletes racing updates, scale patches racing status
/// writes: no spurious 409, nothing lost; stale resourceVersions still conflict.
fn concurrent_writes_never_conflict_spuriously(b: Backend) {
    let c = Cluster::new(b);
    let out = python::run("concurrent_writes.py", &c.kubeconfig, Duration::from_secs(240));
    assert!(out.contains("all applied") && out.contains("no conflict"), "{out}");
    assert!(out.contains("scale racing status writes: 60 scales, no conflict"), "{out}");
}

on_both_backends!(concurrent_writes_never_conflict_spuriously);
