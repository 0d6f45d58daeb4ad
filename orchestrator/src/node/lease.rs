//! The node heartbeat: a Lease in `kube-node-lease` named after the node, renewed every few
//! seconds; the node lifecycle controller reads `renewTime`.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};

use super::LEASE_NAMESPACE;
use crate::api::ApiError;
use crate::kube::Kube;

/// Renews `node`'s lease, given the last one this agent wrote (None: read or create it).
/// Returns the lease as stored, for the next renewal.
pub async fn renew(
    kube: &Kube,
    node: &str,
    duration_seconds: i32,
    last: Option<Lease>,
) -> Result<Lease, ApiError> {
    let now = MicroTime(chrono::Utc::now());
    let current = match last {
        Some(l) => Some(l),
        None => kube.get::<Lease>(Some(LEASE_NAMESPACE), node).await?,
    };
    let Some(mut lease) = current else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(node.to_owned()),
                namespace: Some(LEASE_NAMESPACE.into()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(node.to_owned()),
                lease_duration_seconds: Some(duration_seconds),
                renew_time: Some(now),
                ..Default::default()
            }),
        };
        return kube.create(&lease).await;
    };
    let spec = lease.spec.get_or_insert_with(Default::default);
    spec.renew_time = Some(now);
    spec.holder_identity = Some(node.to_owned());
    spec.lease_duration_seconds = Some(duration_seconds);
    match kube.update(&lease).await {
        Ok(l) => Ok(l),
        // Someone else wrote it (or it was deleted): start over from the stored one.
        Err(e) if e.code == 409 || e.code == 404 => {
            Box::pin(renew(kube, node, duration_seconds, None)).await
        }
        Err(e) => Err(e),
    }
}
