//! What can keep NetworkPolicies from being enforced.

#[derive(Debug, thiserror::Error)]
pub enum NetworkPolicyError {
    #[error(
        "NetworkPolicy enforcement needs the `nft` program ({0}); install Debian's nftables \
         package or start the node with --no-network-policy"
    )]
    Nft(String),
    #[error(
        "NetworkPolicy enforcement needs bridged traffic to reach netfilter (br_netfilter, \
         net.bridge.bridge-nf-call-iptables=1): {0}; load br_netfilter or start the node with \
         --no-network-policy"
    )]
    BridgeNetfilter(String),
    #[error("applying the NetworkPolicy ruleset: {0}")]
    Apply(String),
}
