//! A microVM pod's network: the guest takes over the pod's address. In the pod's network
//! namespace a tap (owned by the jailed VMM's user) is joined to the pod's veth with traffic
//! control redirects both ways, as Kata Containers does; the guest's interface gets the veth's
//! MAC address and the pod's IP, so the node, Services, DNS and probes reach the guest exactly
//! where they would reach a container. The namespace keeps no address of its own.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

use guest_agent::proto;

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
    /// None where the pod's network has no default route (a CNI configuration without a
    /// gateway): the guest then reaches its own subnet only, as a container would.
    pub gateway: Option<Ipv4Addr>,
}

impl GuestInterface {
    /// The agent's kernel command-line words for it.
    pub fn cmdline(&self) -> String {
        let mut words = format!("ringfence.ip={}/{}", self.address, self.prefix);
        if let Some(gw) = self.gateway {
            words.push_str(&format!(" ringfence.gw={gw}"));
        }
        words
    }

    /// The same, for a running guest (a template's clone).
    pub fn request(&self) -> proto::ConfigureInterfaceRequest {
        proto::ConfigureInterfaceRequest {
            name: "eth0".into(),
            address: format!("{}/{}", self.address, self.prefix),
            gateway: self.gateway.map(|g| g.to_string()).unwrap_or_default(),
            mtu: 0,
            mac: self.mac.clone(),
        }
    }
}

/// The `link/ether` address in `ip -o link show` output.
fn parse_mac(text: &str) -> Option<String> {
    let mut words = text.split_whitespace();
    words.find(|w| *w == "link/ether")?;
    let mac = words.next()?;
    (mac.len() == 17 && mac.split(':').count() == 6).then(|| mac.to_owned())
}

/// The pod's address as `ip -o -4 addr show` prints it (`inet 10.88.0.5/24 brd ...`).
fn parse_inet(text: &str) -> Option<(Ipv4Addr, u8)> {
    let mut words = text.split_whitespace();
    words.find(|w| *w == "inet")?;
    let (address, prefix) = words.next()?.split_once('/')?;
    Some((address.parse().ok()?, prefix.parse().ok()?))
}

/// The gateway of `ip -4 route show default` (`default via 10.88.0.1 dev eth0`).
fn parse_gateway(text: &str) -> Option<Ipv4Addr> {
    let mut words = text.split_whitespace();
    words.find(|w| *w == "via")?;
    words.next()?.parse().ok()
}

/// The name `ip -n` knows a namespace by: iproute2 looks only under /var/run/netns.
fn netns_name(path: &Path) -> Result<String, CriError> {
    let parent = path.parent().and_then(Path::to_str);
    match (parent, path.file_name().and_then(|n| n.to_str())) {
        (Some("/run/netns" | "/var/run/netns"), Some(name)) => Ok(name.to_owned()),
        _ => Err(CriError::Network(format!(
            "network namespace {}: a microVM joins namespaces under /run/netns only",
            path.display()
        ))),
    }
}

/// The namespace's name and the pod's address: as the runtime made them, or read from a
/// namespace someone else configured (containerd's CRI plugin, through its own CNI call).
fn pod_address(net: &PodNet) -> Result<(String, Ipv4Addr, u8, Option<Ipv4Addr>), CriError> {
    if !net.netns.is_empty() && !net.ip.is_unspecified() {
        let gateway = Some(net.gateway).filter(|g| !g.is_unspecified());
        return Ok((net.netns.clone(), net.ip, net.prefix, gateway));
    }
    let ns = netns_name(&net.netns_path)?;
    let addr = run("ip", &["-n", &ns, "-o", "-4", "addr", "show", "dev", VETH])?;
    let (ip, prefix) = parse_inet(&addr)
        .ok_or_else(|| CriError::Network(format!("no IPv4 address on {VETH} in {ns}: {addr}")))?;
    let routes = run("ip", &["-n", &ns, "-4", "route", "show", "default"])?;
    Ok((ns, ip, prefix, parse_gateway(&routes)))
}

/// Sets the pod's namespace up for a guest and says how the guest's interface must look.
pub fn attach(net: &PodNet, uid: u32, gid: u32) -> Result<GuestInterface, CriError> {
    let (ns, address, prefix, gateway) = pod_address(net)?;
    let ns = ns.as_str();
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
    Ok(GuestInterface { mac, address, prefix, gateway })
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
    fn a_namespace_made_elsewhere_is_read_back() {
        let addr = "2: eth0    inet 10.88.0.5/24 brd 10.88.0.255 scope global eth0\\ valid_lft";
        assert_eq!(parse_inet(addr), Some((Ipv4Addr::new(10, 88, 0, 5), 24)));
        assert_eq!(parse_inet("2: eth0 inet6 fe80::1/64"), None);
        let route = "default via 10.88.0.1 dev eth0 \n";
        assert_eq!(parse_gateway(route), Some(Ipv4Addr::new(10, 88, 0, 1)));
        assert_eq!(parse_gateway(""), None);
        let name = |p: &str| netns_name(Path::new(p)).map_err(|e| e.to_string());
        assert_eq!(name("/var/run/netns/cni-1234").unwrap(), "cni-1234");
        assert_eq!(name("/run/netns/rf-x").unwrap(), "rf-x");
        assert!(name("/proc/77/ns/net").unwrap_err().contains("under /run/netns"));
    }

    #[test]
    fn the_guest_is_told_its_address_on_the_command_line() {
        let g = GuestInterface {
            mac: "ae:12:34:56:78:9a".into(),
            address: Ipv4Addr::new(10, 88, 0, 5),
            prefix: 24,
            gateway: Some(Ipv4Addr::new(10, 88, 0, 1)),
        };
        assert_eq!(g.cmdline(), "ringfence.ip=10.88.0.5/24 ringfence.gw=10.88.0.1");
        assert_eq!(g.request().gateway, "10.88.0.1");
        assert_eq!(g.request().address, "10.88.0.5/24");
    }

    #[test]
    fn a_network_without_a_default_route_gives_the_guest_none() {
        let g = GuestInterface {
            mac: "ae:12:34:56:78:9a".into(),
            address: Ipv4Addr::new(10, 88, 0, 5),
            prefix: 24,
            gateway: None,
        };
        assert_eq!(g.cmdline(), "ringfence.ip=10.88.0.5/24");
        assert_eq!(g.request().gateway, "");
        // What the guest agent makes of it: an address, no route.
        let cfg = guest_agent::network::InterfaceConfig::parse("eth0", "10.88.0.5/24", "", 0);
        assert_eq!(cfg.unwrap().gateway, None);
        let mut net = PodNet::existing("/run/netns/rf-x".into());
        (net.netns, net.ip, net.prefix) = ("rf-x".into(), Ipv4Addr::new(10, 88, 0, 5), 24);
        assert_eq!(pod_address(&net).unwrap().3, None, "an unspecified gateway is none");
    }
}
