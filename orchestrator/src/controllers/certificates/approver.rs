//! Approves node agents' serving-certificate requests when they can be trusted: asked for by
//! the node itself (user `system:node:NAME`) or an admin, for exactly that node's subject,
//! with serving usages only, naming only addresses the Node object lists. A request that can
//! never be valid is denied with the reason; one asked for by someone else waits for a person.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::Node;
use rcgen::{CertificateSigningRequestParams, SanType};
use serde_json::json;

use super::{KUBELET_SERVING, NODE_USER_PREFIX, requested_node, serving_usages};
use crate::api::ApiError;
use crate::api::certificate_requests::{has_condition, parse_request};
use crate::api::engine::authorize::MASTERS;
use crate::api::request::PatchType;
use crate::api::resources::Subresource;
use crate::controllers::Context;
use crate::kube::{Action, Controller, Informer, Kube, ObjectKey, Reconciler, WorkQueue};

/// How long a request for a node not (yet) registered is looked at again.
const NODE_WAIT: Duration = Duration::from_secs(2);
/// How long after its creation a request still waits for its node.
const NODE_WAIT_MAX: Duration = Duration::from_secs(600);

/// What to do with one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Approve(String),
    Deny(String),
    /// Its node is not known yet: look again later.
    WaitForNode,
    /// Not ours to decide (another signer, decided already, or asked by someone else).
    Leave,
}

/// The addresses a node may name in its certificate: every address on its Node object.
fn node_addresses(node: &Node) -> BTreeSet<String> {
    let list = node.status.as_ref().and_then(|s| s.addresses.as_ref());
    list.into_iter().flatten().map(|a| a.address.clone()).collect()
}

fn san_text(san: &SanType) -> Result<String, String> {
    match san {
        SanType::DnsName(n) => Ok(n.as_str().to_owned()),
        SanType::IpAddress(ip) => Ok(ip.to_string()),
        _ => Err("only DNS names and IP addresses may be requested".into()),
    }
}

/// The decision for `csr`, whose request parsed as `request`, given its node (if known).
pub fn decide(
    csr: &CertificateSigningRequest,
    request: Result<&CertificateSigningRequestParams, &str>,
    node: impl FnOnce(&str) -> Option<Arc<Node>>,
) -> Decision {
    let value = serde_json::to_value(csr).unwrap_or_default();
    if csr.spec.signer_name != KUBELET_SERVING
        || has_condition(&value, "Approved")
        || has_condition(&value, "Denied")
    {
        return Decision::Leave;
    }
    let request = match request {
        Ok(r) => r,
        Err(e) => return Decision::Deny(format!("the request does not parse: {e}")),
    };
    let name = match requested_node(request) {
        Ok(n) => n,
        Err(e) => return Decision::Deny(e),
    };
    let by_node = csr.spec.username.as_deref() == Some(&format!("{NODE_USER_PREFIX}{name}"));
    let by_admin = csr.spec.groups.iter().flatten().any(|g| g == MASTERS);
    if !by_node && !by_admin {
        return Decision::Leave;
    }
    if let Err(e) = serving_usages(csr.spec.usages.as_deref().unwrap_or_default()) {
        return Decision::Deny(e);
    }
    let Some(node) = node(&name) else { return Decision::WaitForNode };
    let addresses = node_addresses(&node);
    let sans = &request.params.subject_alt_names;
    if sans.is_empty() {
        return Decision::Deny("the request names no address".into());
    }
    for san in sans {
        match san_text(san) {
            Err(e) => return Decision::Deny(e),
            Ok(s) if !addresses.contains(&s) => {
                return Decision::Deny(format!(
                    "{s} is not an address of node {name} (it has {})",
                    addresses.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
            Ok(_) => {}
        }
    }
    let who = if by_node { "the node itself" } else { "an admin" };
    Decision::Approve(format!("requested by {who} for addresses of node {name}"))
}

pub struct Approver {
    kube: Kube,
    csrs: Arc<Informer<CertificateSigningRequest>>,
    nodes: Arc<Informer<Node>>,
}

pub fn controller(ctx: &Context) -> Controller {
    let queue = WorkQueue::new();
    let csrs = ctx.informers.get::<CertificateSigningRequest>();
    let q = queue.clone();
    csrs.on_change(move |c| q.add(ObjectKey::of(&c.object().metadata)));
    let reconciler = Arc::new(Approver {
        kube: ctx.kube.named("certificate-controller"),
        csrs,
        nodes: ctx.informers.get::<Node>(),
    });
    Controller { name: "csrapproving", queue, reconciler, workers: 1 }
}

fn condition(type_: &str, reason: &str, message: &str) -> serde_json::Value {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    json!({"type": type_, "status": "True", "reason": reason, "message": message,
        "lastUpdateTime": now, "lastTransitionTime": now})
}

#[async_trait]
impl Reconciler for Approver {
    async fn sync(&self, key: &ObjectKey) -> Result<Action, ApiError> {
        let Some(csr) = self.csrs.get(key) else { return Ok(Action::Done) };
        let request = parse_request(&serde_json::to_value(&*csr).unwrap_or_default());
        let nodes = &self.nodes;
        let decision = decide(&csr, request.as_ref().map_err(String::as_str), |name| {
            nodes.get(&ObjectKey::new(None, name))
        });
        let (type_, reason, message) = match decision {
            Decision::Leave => return Ok(Action::Done),
            Decision::WaitForNode => {
                let age =
                    csr.metadata.creation_timestamp.as_ref().map(|t| chrono::Utc::now() - t.0);
                let young = age.is_none_or(|a| a.to_std().unwrap_or_default() < NODE_WAIT_MAX);
                return Ok(if young { Action::RequeueAfter(NODE_WAIT) } else { Action::Done });
            }
            Decision::Approve(m) => ("Approved", "AutoApproved", m),
            Decision::Deny(m) => ("Denied", "NotANodeServingRequest", m),
        };
        tracing::info!("certificate request {}: {type_}: {message}", key.name);
        let mut conditions = serde_json::to_value(
            csr.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default(),
        )
        .unwrap_or_default();
        if let Some(list) = conditions.as_array_mut() {
            list.push(condition(type_, reason, &message));
        }
        let patch = json!({
            "metadata": {"resourceVersion": csr.metadata.resource_version},
            "status": {"conditions": conditions},
        });
        self.kube
            .patch::<CertificateSigningRequest>(
                None,
                &key.name,
                PatchType::Merge,
                patch,
                Some(Subresource::Approval),
            )
            .await?;
        Ok(Action::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::super::NODES_GROUP;
    use super::super::tests::request;
    use super::*;
    use k8s_openapi::api::certificates::v1::CertificateSigningRequestSpec;
    use k8s_openapi::api::core::v1::{NodeAddress, NodeStatus};

    fn csr(user: &str, groups: &[&str], usages: &[&str]) -> CertificateSigningRequest {
        CertificateSigningRequest {
            spec: CertificateSigningRequestSpec {
                signer_name: KUBELET_SERVING.into(),
                username: Some(user.into()),
                groups: Some(groups.iter().map(|g| g.to_string()).collect()),
                usages: Some(usages.iter().map(|u| u.to_string()).collect()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn node_a(name: &str) -> Option<Arc<Node>> {
        (name == "a").then(|| {
            Arc::new(Node {
                status: Some(NodeStatus {
                    addresses: Some(vec![
                        NodeAddress { type_: "InternalIP".into(), address: "10.0.0.1".into() },
                        NodeAddress { type_: "Hostname".into(), address: "a".into() },
                    ]),
                    ..Default::default()
                }),
                ..Default::default()
            })
        })
    }

    #[test]
    fn decisions() {
        let serving = ["digital signature", "server auth"];
        let good = request("system:node:a", &[NODES_GROUP], &["10.0.0.1", "a"]);
        let by_node = csr("system:node:a", &[NODES_GROUP], &serving);
        assert!(matches!(decide(&by_node, Ok(&good), node_a), Decision::Approve(_)));
        let by_admin = csr("kubernetes-admin", &[MASTERS], &serving);
        assert!(matches!(decide(&by_admin, Ok(&good), node_a), Decision::Approve(_)));
        // Another node asking for a's certificate, or a plain user: a person decides.
        let by_b = csr("system:node:b", &[NODES_GROUP], &serving);
        assert_eq!(decide(&by_b, Ok(&good), node_a), Decision::Leave);
        // An address that is not the node's.
        let foreign = request("system:node:a", &[NODES_GROUP], &["10.0.0.9"]);
        assert!(
            matches!(decide(&by_node, Ok(&foreign), node_a), Decision::Deny(m) if m.contains("10.0.0.9"))
        );
        // Client usages on a serving request.
        let client = csr("system:node:a", &[NODES_GROUP], &["client auth", "server auth"]);
        assert!(matches!(decide(&client, Ok(&good), node_a), Decision::Deny(_)));
        // A node not registered yet.
        let c = request("system:node:c", &[NODES_GROUP], &["10.0.0.3"]);
        let by_c = csr("system:node:c", &[NODES_GROUP], &serving);
        assert_eq!(decide(&by_c, Ok(&c), node_a), Decision::WaitForNode);
        // Another signer's request.
        let mut other = by_node.clone();
        other.spec.signer_name = "example.com/x".into();
        assert_eq!(decide(&other, Ok(&good), node_a), Decision::Leave);
    }
}
