//! What can go wrong in the node agent, one type for all of `node/`. Variants whose text reaches
//! users (container waiting messages, Events) display exactly the words Kubernetes uses.

use crate::api::ApiError;
use crate::kube::connection::ConnectionError;

use super::volumes::VolumeError;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The agent's own configuration cannot work (e.g. no runtime handler).
    #[error("{0}")]
    Config(String),
    /// The kubeconfig cannot be read or used (its own text says which).
    #[error(transparent)]
    Kubeconfig(#[from] ConnectionError),
    #[error("{0}")]
    Api(#[from] ApiError),
    #[error("registering node {node}: {source}")]
    Register { node: String, source: ApiError },
    /// The CRI runtime refused or failed a call.
    #[error("{}", .0.message())]
    Cri(#[from] tonic::Status),
    #[error("connecting to the CRI runtime: {0}")]
    CriConnect(#[from] tonic::transport::Error),
    #[error("node endpoints on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
    /// The node's TLS (serving certificate, client verification) cannot be set up.
    #[error("node TLS: {0}")]
    Tls(String),
    /// The control plane did not issue the node's serving certificate; the text says why.
    #[error("serving certificate: {0}")]
    ServingCert(String),
    /// The pod's RuntimeClass cannot be run here.
    #[error("{0}")]
    RuntimeClass(String),
    #[error("{0}")]
    Volume(#[from] VolumeError),
    /// A container's environment cannot be built (a missing ConfigMap, Secret or key).
    #[error("{0}")]
    Env(String),
    /// A probe or lifecycle hook failed; the text says why, as the kubelet says it.
    #[error("{0}")]
    Probe(String),
    /// The nftables Service data path cannot start.
    #[error(transparent)]
    ServiceProxy(#[from] super::nft_proxy::NftError),
    /// NetworkPolicies cannot be enforced.
    #[error(transparent)]
    NetworkPolicy(#[from] super::network_policy::NetworkPolicyError),
}

impl NodeError {
    pub fn probe(msg: impl Into<String>) -> Self {
        Self::Probe(msg.into())
    }

    pub fn env(msg: impl Into<String>) -> Self {
        Self::Env(msg.into())
    }
}
