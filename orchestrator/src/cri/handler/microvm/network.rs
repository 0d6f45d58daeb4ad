//! A microVM pod's network: the guest takes over the pod's address. In the pod's network
//! namespace a tap (owned by the jailed VMM's user) is joined to the pod's veth with traffic
//! control redirects both ways, as Kata Containers does; the guest's interface gets the veth's
//! MAC address and the pod's IP, so the node, Services, DNS and probes reach the guest exactly
//! where they would reach a container. The namespace keeps no address of its own.

use std::net::Ipv4Addr;
use std::process::Command;

use crate::cri::CriError;
use crate::cri::network::{PodNet, batch};

/// The tap's name inside the pod's namespace.
pub const TAP: &str = "tap0";
/// The pod's end of its veth pair (see [`crate::cri::network`]).
const VETH: &str = "eth0";

fn run(program: &str, args: &[&str]) -> Result<String, CriError> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| CriError::Network(format!("{program} {}: {e}", args.join(" "))))?;
    if !out.status.success() {
        return Err(CriError::Network(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What the guest's interface is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestInterface {
    pub mac: String,
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
}

impl GuestInterface {
    /// The agent's kernel command-line words for it.
    pub fn cmdline(&self) -> String {
        format!("ringfence.ip={}/{} ringfence.gw={}", self.address, self.prefix, self.gateway)
    }
}

/// The `link/ether` address in `ip -o link show` output.
fn parse_mac(text: &str) -> Option<String> {
    let mut words = text.split_whitespace();
    words.find(|w| *w == "link/ether")?;
    let mac = words.next()?;
    (mac.len() == 17 && mac.split(':').count() == 6).then(|| mac.to_owned())
}

/// Sets the pod's namespace up for a guest and says how the guest's interface must look.
pub fn attach(net: &PodNet, uid: u32, gid: u32) -> Result<GuestInterface, CriError> {
    let ns = net.netns.as_str();
    let link = run("ip", &["-n", ns, "-o", "link", "show", VETH])?;
    let mac = parse_mac(&link)
        .ok_or_else(|| CriError::Network(format!("no MAC address on {VETH} in {ns}: {link}")))?;
    let taps = [
        format!("tuntap add dev {TAP} mode tap user {uid} group {gid}"),
        format!("link set {TAP} up"),
        // The guest answers for the pod's address from now on.
        format!("addr flush dev {VETH}"),
    ];
    batch("ip", Some(ns), &taps)?;
    // u32 matching everything: the classifier kernels build in most often (matchall is a
    // module, or absent, on many).
    let mut redirects = Vec::new();
    for (from, to) in [(VETH, TAP), (TAP, VETH)] {
        redirects.push(format!("qdisc add dev {from} ingress"));
        redirects.push(format!(
            "filter add dev {from} parent ffff: protocol all u32 match u8 0 0 \
             action mirred egress redirect dev {to}"
        ));
    }
    batch("tc", Some(ns), &redirects)?;
    Ok(GuestInterface { mac, address: net.ip, prefix: net.prefix, gateway: net.gateway })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_veths_mac_is_read_from_ip_link() {
        let out = "2: eth0@if9: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue \
                   state UP mode DEFAULT group default qlen 1000\\    link/ether \
                   ae:12:34:56:78:9a brd ff:ff:ff:ff:ff:ff link-netnsid 0";
        assert_eq!(parse_mac(out).as_deref(), Some("ae:12:34:56:78:9a"));
        assert_eq!(parse_mac("1: lo: <LOOPBACK> link/loopback 00:00:00:00:00:00"), None);
    }

    #[test]
    fn the_guest_is_told_its_address_on_the_command_line() {
        let g = GuestInterface {
            mac: "ae:12:34:56:78:9a".into(),
            address: Ipv4Addr::new(10, 88, 0, 5),
            prefix: 24,
            gateway: Ipv4Addr::new(10, 88, 0, 1),
        };
        assert_eq!(g.cmdline(), "ringfence.ip=10.88.0.5/24 ringfence.gw=10.88.0.1");
    }
}
