//! Pod networking on a node: every pod sandbox gets a network namespace with a veth pair into
//! the node's bridge and an address from the node's pod subnet (the role CNI plays for other
//! runtimes). Uses iproute2.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

use super::CriError;

/// The node's pod subnet (a /24) and the bridge its pods hang off.
pub struct PodNetwork {
    bridge: String,
    /// First three octets of the /24; .1 is the bridge (gateway).
    prefix: [u8; 3],
    used: Mutex<HashSet<u8>>,
}

/// One pod's network.
#[derive(Clone, Debug)]
pub struct PodNet {
    pub netns: String,
    pub netns_path: PathBuf,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    host_veth: String,
}

fn ip(args: &[&str]) -> Result<(), CriError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| CriError::Network(format!("ip {}: {e}", args.join(" "))))?;
    if !out.status.success() {
        return Err(CriError::Network(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

impl PodNetwork {
    /// `cidr` must be an IPv4 /24, e.g. 10.88.0.0/24.
    pub fn new(bridge: &str, cidr: &str) -> Result<PodNetwork, CriError> {
        let (addr, len) = cidr
            .split_once('/')
            .ok_or_else(|| CriError::Invalid(format!("pod CIDR {cidr}: expected a.b.c.0/24")))?;
        let a: Ipv4Addr =
            addr.parse().map_err(|_| CriError::Invalid(format!("pod CIDR {cidr}")))?;
        if len != "24" || a.octets()[3] != 0 {
            return Err(CriError::Invalid(format!(
                "pod CIDR {cidr}: only /24 subnets are supported"
            )));
        }
        if bridge.len() > 15 {
            return Err(CriError::Invalid(format!("bridge name {bridge} is longer than 15 bytes")));
        }
        let o = a.octets();
        Ok(PodNetwork {
            bridge: bridge.into(),
            prefix: [o[0], o[1], o[2]],
            used: Mutex::new(HashSet::new()),
        })
    }

    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.prefix[0], self.prefix[1], self.prefix[2], 1)
    }

    pub fn cidr(&self) -> String {
        format!("{}.{}.{}.0/24", self.prefix[0], self.prefix[1], self.prefix[2])
    }

    /// Creates the bridge if needed, with the gateway address, and enables forwarding.
    pub fn ensure_bridge(&self) -> Result<(), CriError> {
        let exists = Command::new("ip")
            .args(["link", "show", &self.bridge])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !exists {
            ip(&["link", "add", &self.bridge, "type", "bridge"])?;
            ip(&["addr", "add", &format!("{}/24", self.gateway()), "dev", &self.bridge])?;
        }
        ip(&["link", "set", &self.bridge, "up"])?;
        let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", "1");
        Ok(())
    }

    /// Removes the bridge (when the runtime stops; its pods are gone by then).
    pub fn remove_bridge(&self) {
        let _ = ip(&["link", "del", &self.bridge]);
    }

    /// Creates the namespace, veth pair and address for pod sandbox `id`.
    pub fn setup(&self, id: &str) -> Result<PodNet, CriError> {
        self.ensure_bridge()?;
        let host = {
            let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
            let h = (2u8..=254)
                .find(|h| !used.contains(h))
                .ok_or_else(|| CriError::Network(format!("pod subnet {} is full", self.cidr())))?;
            used.insert(h);
            h
        };
        let short = &id[..id.len().min(12)];
        let pod = PodNet {
            netns: format!("rf-{short}"),
            // Where iproute2 keeps named namespaces (/var/run is /run on current systems).
            netns_path: PathBuf::from(format!("/run/netns/rf-{short}")),
            ip: Ipv4Addr::new(self.prefix[0], self.prefix[1], self.prefix[2], host),
            prefix: 24,
            gateway: self.gateway(),
            host_veth: format!("rfv{short}")[..15.min(3 + short.len())].to_string(),
        };
        let result = (|| {
            ip(&["netns", "add", &pod.netns])?;
            ip(&[
                "link",
                "add",
                &pod.host_veth,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &pod.netns,
            ])?;
            ip(&["link", "set", &pod.host_veth, "master", &self.bridge, "up"])?;
            ip(&["-n", &pod.netns, "addr", "add", &format!("{}/24", pod.ip), "dev", "eth0"])?;
            ip(&["-n", &pod.netns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &pod.netns, "link", "set", "lo", "up"])?;
            ip(&["-n", &pod.netns, "route", "add", "default", "via", &self.gateway().to_string()])
        })();
        if let Err(e) = result {
            self.teardown(&pod);
            return Err(e);
        }
        // The address may have been another pod's a moment ago: forget its old neighbour.
        let _ = ip(&["neigh", "flush", "to", &pod.ip.to_string(), "dev", &self.bridge]);
        Ok(pod)
    }

    /// Removes a pod's namespace (its veth goes with it) and frees its address.
    pub fn teardown(&self, pod: &PodNet) {
        let _ = ip(&["netns", "del", &pod.netns]);
        let _ = ip(&["link", "del", &pod.host_veth]);
        self.used.lock().unwrap_or_else(|e| e.into_inner()).remove(&pod.ip.octets()[3]);
    }
}
