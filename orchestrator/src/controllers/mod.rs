//! The controller manager: one controller per workload kind and cluster function, each a
//! queue of keys fed by informer handlers and an idempotent, level-triggered `sync(key)`
//! ([`crate::kube::Reconciler`]); a restarted manager re-derives everything from fresh lists,
//! so interrupted work (a rollout, a Job) simply continues.

pub mod certificates;
pub mod common;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod hpa;
pub mod job;
pub mod node_ipam;
pub mod node_lifecycle;
pub mod pod_control;
pub mod replicaset;
pub mod replicated;
pub mod resource_quota;
pub mod service_accounts;
pub mod statefulset;

use std::sync::Arc;
use std::time::Duration;

use crate::kube::{Controller, EventRecorder, Informers, Kube};

#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// A node whose Lease is older than this is marked NotReady/unreachable.
    pub node_monitor_grace_period: Duration,
    /// Workers per controller.
    pub workers: usize,
    /// How often each HorizontalPodAutoscaler is evaluated.
    pub hpa_sync_period: Duration,
    /// Where Nodes without a pod range get one (none: nodes bring their own).
    pub cluster_cidr: Option<node_ipam::ClusterCidr>,
    /// The cluster CA, for issuing approved certificate requests (none: nothing is signed).
    pub signer: Option<Arc<dyn certificates::CertificateSigner>>,
    /// The cluster CA's certificate (PEM) that namespaces' `kube-root-ca.crt` carries (none:
    /// not published).
    pub root_ca: Option<String>,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            node_monitor_grace_period: Duration::from_secs(40),
            workers: 4,
            hpa_sync_period: Duration::from_secs(15),
            cluster_cidr: None,
            signer: None,
            root_ca: None,
        }
    }
}

/// What every controller is built from.
pub struct Context {
    pub kube: Kube,
    pub informers: Arc<Informers>,
    pub recorder: EventRecorder,
    pub config: ControllerConfig,
}

type Constructor = fn(&Context) -> Controller;

/// Every controller the manager runs, by name.
pub const CONTROLLERS: &[(&str, Constructor)] = &[
    ("replicaset", replicaset::controller::<k8s_openapi::api::apps::v1::ReplicaSet>),
    (
        "replicationcontroller",
        replicaset::controller::<k8s_openapi::api::core::v1::ReplicationController>,
    ),
    ("deployment", deployment::controller),
    ("daemonset", daemonset::controller),
    ("statefulset", statefulset::controller),
    ("job", job::controller),
    ("cronjob", cronjob::controller),
    ("endpoints", endpoints::legacy::controller),
    ("endpointslice", endpoints::slices::controller),
    ("horizontalpodautoscaling", hpa::controller),
    ("nodelifecycle", node_lifecycle::controller),
    ("taint-eviction", node_lifecycle::eviction::controller),
    ("nodeipam", node_ipam::controller),
    ("csrapproving", certificates::approver::controller),
    ("serviceaccount", service_accounts::default_account::controller),
    ("root-ca-cert-publisher", service_accounts::root_ca::controller),
    ("disruption", disruption::controller),
    ("resourcequota", resource_quota::controller),
];

/// Wires every controller to `informers` (start them after); returns the worker tasks.
pub fn start(
    informers: &Arc<Informers>,
    config: ControllerConfig,
) -> Vec<tokio::task::JoinHandle<()>> {
    let kube = informers.kube().named("kube-controller-manager");
    let ctx = Context {
        recorder: EventRecorder::new(kube.clone(), "kube-controller-manager"),
        kube,
        informers: informers.clone(),
        config,
    };
    let signing = certificates::signer::controller(&ctx);
    CONTROLLERS
        .iter()
        .map(|(_, new)| new(&ctx))
        .chain(signing)
        .flat_map(|c| c.spawn(informers.clone()))
        .collect()
}
