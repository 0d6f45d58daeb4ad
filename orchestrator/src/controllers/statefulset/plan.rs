//! Decide, then act: what one sync of a StatefulSet does to its pods, as a pure function of
//! the set and the pods found (tested by tables below); the controller carries the steps out.
//!
//! In order, as Kubernetes does it: missing pods of ordinals `start..start+replicas` are
//! created (failed ones deleted so that they come back under the same name); then pods
//! beyond the replicas are deleted, highest ordinal first; then a rolling update deletes the
//! highest pod not at the update revision, down to the partition, once every pod above it
//! is healthy again. With OrderedReady each stage stops at the first pod that is missing,
//! terminating or not yet Running and available, and at most one pod changes per sync;
//! with Parallel pods are created and deleted together.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use super::identity::revision_of;
use crate::controllers::common::{is_available, phase};

/// Which revision a new pod is stamped from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Current,
    Update,
}

/// Why a pod is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// It ran to completion or failed: it is recreated under the same name.
    Finished,
    /// Its ordinal is beyond the replicas (a scale down).
    Condemned,
    /// It is not at the update revision (a rolling update).
    Outdated,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Create { ordinal: i32, from: Which },
    Delete { pod: Arc<Pod>, why: Why },
}

/// How pods are replaced when the template changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Ordinals at or above `start + partition` are moved to the update revision.
    RollingUpdate { partition: i32 },
    /// Pods change revision only when someone deletes them.
    OnDelete,
}

pub struct Inputs<'a> {
    pub start: i32,
    pub replicas: i32,
    /// OrderedReady (true) or Parallel.
    pub ordered: bool,
    pub strategy: Strategy,
    pub update_revision: &'a str,
    pub min_ready_seconds: i32,
    pub now: chrono::DateTime<chrono::Utc>,
    /// The set's pods by ordinal.
    pub pods: &'a BTreeMap<i32, Arc<Pod>>,
}

fn terminating(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_some()
}

fn finished(p: &Pod) -> bool {
    matches!(phase(p), "Succeeded" | "Failed")
}

impl Inputs<'_> {
    fn healthy(&self, p: &Pod) -> bool {
        !terminating(p)
            && phase(p) == "Running"
            && is_available(p, self.min_ready_seconds, self.now)
    }

    /// The revision a pod created now at `ordinal` gets.
    pub fn revision_for(&self, ordinal: i32) -> Which {
        match self.strategy {
            Strategy::RollingUpdate { partition } if ordinal < self.start + partition => {
                Which::Current
            }
            _ => Which::Update,
        }
    }
}

pub fn plan(i: &Inputs) -> Vec<Step> {
    let mut steps = Vec::new();
    let end = i.start + i.replicas;
    for ordinal in i.start..end {
        let blocked = match i.pods.get(&ordinal) {
            None => {
                steps.push(Step::Create { ordinal, from: i.revision_for(ordinal) });
                true
            }
            Some(p) if terminating(p) => true,
            Some(p) if finished(p) => {
                steps.push(Step::Delete { pod: p.clone(), why: Why::Finished });
                true
            }
            Some(p) => !i.healthy(p),
        };
        if blocked && i.ordered {
            return steps;
        }
    }
    let condemned = i.pods.iter().rev().filter(|(o, _)| **o < i.start || **o >= end);
    for (_, p) in condemned {
        if !terminating(p) {
            steps.push(Step::Delete { pod: p.clone(), why: Why::Condemned });
        }
        if i.ordered {
            return steps;
        }
    }
    let Strategy::RollingUpdate { partition } = i.strategy else { return steps };
    if !steps.is_empty() {
        // Scaling first; the update follows once the set has its replicas.
        return steps;
    }
    for ordinal in (i.start + partition.max(0)..end).rev() {
        let Some(p) = i.pods.get(&ordinal) else { return steps };
        if revision_of(p) != Some(i.update_revision) && !terminating(p) {
            steps.push(Step::Delete { pod: p.clone(), why: Why::Outdated });
            return steps;
        }
        if !i.healthy(p) {
            return steps;
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pod at `ordinal`, revision `rev`, in `state`: "ready", "pending", "failed" or
    /// "terminating".
    fn pod(ordinal: i32, rev: &str, state: &str) -> (i32, Arc<Pod>) {
        let (phase, ready) = match state {
            "ready" | "terminating" => ("Running", "True"),
            "pending" => ("Pending", "False"),
            "failed" => ("Failed", "False"),
            other => panic!("{other}"),
        };
        let mut p: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("web-{ordinal}"),
                         "labels": {"controller-revision-hash": rev}},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": ready}]}
        }))
        .unwrap();
        if state == "terminating" {
            p.metadata.deletion_timestamp =
                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(chrono::Utc::now()));
        }
        (ordinal, Arc::new(p))
    }

    fn run(
        replicas: i32,
        ordered: bool,
        strategy: Strategy,
        pods: &[(i32, &str, &str)],
    ) -> Vec<String> {
        let pods: BTreeMap<i32, Arc<Pod>> = pods.iter().map(|(o, r, s)| pod(*o, r, s)).collect();
        let inputs = Inputs {
            start: 0,
            replicas,
            ordered,
            strategy,
            update_revision: "new",
            min_ready_seconds: 0,
            now: chrono::Utc::now(),
            pods: &pods,
        };
        plan(&inputs)
            .into_iter()
            .map(|s| match s {
                Step::Create { ordinal, from } => format!("create {ordinal} {from:?}"),
                Step::Delete { pod, why } => {
                    format!("delete {} {why:?}", pod.metadata.name.as_deref().unwrap())
                }
            })
            .collect()
    }

    const ROLL: Strategy = Strategy::RollingUpdate { partition: 0 };

    #[test]
    fn ordered_creation_waits_for_each_pod() {
        assert_eq!(run(3, true, ROLL, &[]), ["create 0 Update"]);
        assert!(run(3, true, ROLL, &[(0, "new", "pending")]).is_empty());
        assert_eq!(run(3, true, ROLL, &[(0, "new", "ready")]), ["create 1 Update"]);
        assert!(
            run(3, true, ROLL, &[(0, "new", "ready"), (1, "new", "ready"), (2, "new", "ready")])
                .is_empty()
        );
        // A failed pod goes first, and comes back under its name on the next sync.
        assert_eq!(run(3, true, ROLL, &[(0, "new", "failed")]), ["delete web-0 Finished"]);
        assert_eq!(
            run(3, true, ROLL, &[(0, "new", "ready"), (2, "new", "ready")]),
            ["create 1 Update"]
        );
    }

    #[test]
    fn parallel_creates_and_deletes_together() {
        assert_eq!(
            run(3, false, ROLL, &[]),
            ["create 0 Update", "create 1 Update", "create 2 Update"]
        );
        assert_eq!(
            run(1, false, ROLL, &[(0, "new", "ready"), (1, "new", "pending"), (2, "new", "ready")]),
            ["delete web-2 Condemned", "delete web-1 Condemned"]
        );
    }

    #[test]
    fn ordered_scale_down_goes_from_the_highest_one_at_a_time() {
        let all = [(0, "new", "ready"), (1, "new", "ready"), (2, "new", "ready")];
        assert_eq!(run(1, true, ROLL, &all), ["delete web-2 Condemned"]);
        assert!(
            run(
                1,
                true,
                ROLL,
                &[(0, "new", "ready"), (1, "new", "ready"), (2, "new", "terminating")]
            )
            .is_empty()
        );
        assert_eq!(run(1, true, ROLL, &all[..2]), ["delete web-1 Condemned"]);
        // Not while a remaining pod is unhealthy.
        assert!(run(1, true, ROLL, &[(0, "new", "pending"), (1, "new", "ready")]).is_empty());
    }

    #[test]
    fn rolling_update_goes_down_from_the_highest_and_honours_the_partition() {
        let old = [(0, "old", "ready"), (1, "old", "ready"), (2, "old", "ready")];
        assert_eq!(run(3, true, ROLL, &old), ["delete web-2 Outdated"]);
        let mid = [(0, "old", "ready"), (1, "old", "ready"), (2, "new", "pending")];
        assert!(run(3, true, ROLL, &mid).is_empty(), "waits for the new pod to be ready");
        let mid = [(0, "old", "ready"), (1, "old", "ready"), (2, "new", "ready")];
        assert_eq!(run(3, true, ROLL, &mid), ["delete web-1 Outdated"]);
        let part = Strategy::RollingUpdate { partition: 2 };
        assert_eq!(run(3, true, part, &old), ["delete web-2 Outdated"]);
        assert!(run(3, true, part, &mid).is_empty(), "ordinals below the partition stay");
        // Recreated pods below the partition get the current revision.
        assert_eq!(run(3, true, part, &[]), ["create 0 Current"]);
        assert_eq!(run(3, true, Strategy::OnDelete, &old), Vec::<String>::new());
        assert_eq!(run(3, true, Strategy::OnDelete, &old[..2]), ["create 2 Update"]);
    }
}
