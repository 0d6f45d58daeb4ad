//! Pods of one node talk over one bridge, and bridged frames bypass the IP hooks unless
//! br_netfilter hands them over (`net.bridge.bridge-nf-call-iptables`, per network namespace
//! since Linux 5.3). The policy table needs that: it is where same-node pod-to-pod traffic
//! meets the rules, conntrack and the Service DNAT, all in the IP family. An nftables `bridge`
//! table would keep this local to the bridge, but conntrack in that family needs
//! nf_conntrack_bridge, which kernels do not all have (the development hosts' does not).
//!
//! It is turned on and left on: other agents of the same namespace may rely on it, and Service
//! traffic between pods of one bridge needs it as much.

use std::path::Path;
use std::process::Command;

use super::NetworkPolicyError;

const SYSCTL: &str = "/proc/sys/net/bridge/bridge-nf-call-iptables";

/// Makes bridged IPv4 traffic of this network namespace go through the IP hooks.
pub fn ensure() -> Result<(), NetworkPolicyError> {
    if !Path::new(SYSCTL).exists() {
        // A kernel with br_netfilter as a module that nobody loaded yet.
        let _ = Command::new("modprobe").arg("br_netfilter").output();
    }
    match std::fs::read_to_string(SYSCTL) {
        Ok(v) if v.trim() == "1" => Ok(()),
        Ok(_) => std::fs::write(SYSCTL, "1")
            .map_err(|e| NetworkPolicyError::BridgeNetfilter(e.to_string())),
        Err(e) => Err(NetworkPolicyError::BridgeNetfilter(format!("{SYSCTL}: {e}"))),
    }
}
