//! Results and errors as plugins print them: the result of an ADD (interfaces, addresses,
//! routes), kept raw as the next plugin's `prevResult`, and the error object of a failure.

use std::net::Ipv4Addr;

use serde::Deserialize;
use serde_json::Value;

use super::config::SUPPORTED_VERSIONS;

#[derive(Debug, Clone, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(default)]
    pub mac: String,
    /// The namespace it lives in; empty for the host's.
    #[serde(default)]
    pub sandbox: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct IpConfig {
    /// Index into the result's interfaces.
    #[serde(default)]
    pub interface: Option<usize>,
    pub address: String,
    #[serde(default)]
    pub gateway: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Route {
    pub dst: String,
    #[serde(default)]
    pub gw: Option<String>,
}

/// A parsed ADD result, with the text it came from.
#[derive(Debug, Clone)]
pub struct CniResult {
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub routes: Vec<Route>,
    /// Exactly what the plugin printed: handed on as `prevResult` and cached for DEL.
    pub raw: Value,
}

#[derive(Deserialize)]
struct Shape {
    #[serde(rename = "cniVersion")]
    cni_version: String,
    #[serde(default)]
    interfaces: Vec<Interface>,
    #[serde(default)]
    ips: Vec<IpConfig>,
    #[serde(default)]
    routes: Vec<Route>,
}

/// The address a pod's interface got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodAddress {
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
}

/// An interface address with its prefix length (`10.88.0.5/24`: the host bits kept).
fn parse_cidr(text: &str) -> Option<(Ipv4Addr, u8)> {
    let net = text.parse::<ipnet::Ipv4Net>().ok()?;
    Some((net.addr(), net.prefix_len()))
}

impl CniResult {
    pub fn parse(bytes: &[u8]) -> Result<CniResult, String> {
        let raw: Value =
            serde_json::from_slice(bytes).map_err(|e| format!("result is not JSON: {e}"))?;
        let shape: Shape =
            serde_json::from_value(raw.clone()).map_err(|e| format!("result is malformed: {e}"))?;
        if !SUPPORTED_VERSIONS.contains(&shape.cni_version.as_str()) {
            return Err(format!("result has unsupported cniVersion {:?}", shape.cni_version));
        }
        Ok(CniResult { interfaces: shape.interfaces, ips: shape.ips, routes: shape.routes, raw })
    }

    /// The IPv4 address of `ifname` inside the pod (or, when the result names no interfaces,
    /// its first IPv4 address), and the gateway: the address's own, else the default route's.
    pub fn pod_address(&self, ifname: &str) -> Result<PodAddress, String> {
        let ours = |ip: &IpConfig| match ip.interface {
            Some(i) => self
                .interfaces
                .get(i)
                .is_some_and(|iface| iface.name == ifname && !iface.sandbox.is_empty()),
            None => true,
        };
        let (ip, cfg) = self
            .ips
            .iter()
            .filter(|c| ours(c))
            .find_map(|c| parse_cidr(&c.address).map(|a| (a, c)))
            .ok_or_else(|| format!("the result has no IPv4 address for {ifname}"))?;
        let default_gw = || {
            self.routes
                .iter()
                .filter(|r| r.dst == "0.0.0.0/0")
                .find_map(|r| r.gw.as_deref()?.parse().ok())
        };
        let gateway = cfg
            .gateway
            .as_deref()
            .and_then(|g| g.parse().ok())
            .or_else(default_gw)
            .unwrap_or(Ipv4Addr::UNSPECIFIED);
        Ok(PodAddress { ip: ip.0, prefix: ip.1, gateway })
    }
}

/// The error object a failing plugin prints.
#[derive(Debug, Clone, Deserialize)]
pub struct PluginError {
    pub code: u32,
    #[serde(default)]
    pub msg: String,
    #[serde(default)]
    pub details: String,
}

impl PluginError {
    /// The plugin's error from its output, if it printed one.
    pub fn parse(bytes: &[u8]) -> Option<PluginError> {
        serde_json::from_slice(bytes).ok()
    }
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.msg)?;
        if !self.details.is_empty() {
            write!(f, " ({})", self.details)?;
        }
        write!(f, " [code {}]", self.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Debian's bridge plugin (1.1.1) printed for an ADD.
    const BRIDGE: &str = r#"{"cniVersion": "1.0.0",
        "interfaces": [{"name": "cnitbr0", "mac": "ee:f9:f1:4c:da:40"},
                       {"name": "veth4d55422a", "mac": "96:58:41:e4:71:99"},
                       {"name": "eth0", "mac": "2a:87:ee:ef:19:dc", "sandbox": "/run/netns/x"}],
        "ips": [{"interface": 2, "address": "10.250.0.2/30", "gateway": "10.250.0.1"}],
        "routes": [{"dst": "0.0.0.0/0"}], "dns": {}}"#;

    #[test]
    fn the_pods_address_is_read_from_a_bridge_result() {
        let r = CniResult::parse(BRIDGE.as_bytes()).unwrap();
        let a = r.pod_address("eth0").unwrap();
        assert_eq!(a.ip, Ipv4Addr::new(10, 250, 0, 2));
        assert_eq!(a.prefix, 30);
        assert_eq!(a.gateway, Ipv4Addr::new(10, 250, 0, 1));
        assert_eq!(r.raw["interfaces"][1]["name"], "veth4d55422a");
        assert!(r.pod_address("eth1").is_err());
    }

    #[test]
    fn the_gateway_may_come_from_the_default_route() {
        let r = CniResult::parse(
            br#"{"cniVersion": "0.4.0", "ips": [{"version": "4", "address": "10.0.0.5/24"}],
                "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.254"}]}"#,
        )
        .unwrap();
        let a = r.pod_address("eth0").unwrap();
        assert_eq!((a.ip, a.gateway), (Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::new(10, 0, 0, 254)));
    }

    #[test]
    fn hostile_results_are_errors_not_panics() {
        for bad in [
            "",
            "null",
            "[]",
            "{",
            r#"{"ips": []}"#,
            r#"{"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.2/24"}}"#,
            r#"{"cniVersion": "1.0.0", "ips": [{"interface": 2}]}"#,
            r#"{"cniVersion": "1.0.0", "ips": "x"}"#,
            r#"{"cniVersion": "1.0.0", "interfaces": [{"mac": "x"}]}"#,
        ] {
            assert!(CniResult::parse(bad.as_bytes()).is_err(), "{bad}");
        }
        // Parsed, but with nothing usable: each an error from pod_address.
        for odd in [
            r#"{"cniVersion": "1.0.0"}"#,
            r#"{"cniVersion": "1.0.0", "ips": [{"address": "fd00::2/64"}]}"#,
            r#"{"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/99"}]}"#,
            r#"{"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2"}]}"#,
            r#"{"cniVersion": "1.0.0", "ips": [{"interface": 7, "address": "10.0.0.2/24"}]}"#,
            r#"{"cniVersion": "1.0.0", "interfaces": [{"name": "eth0"}],
                "ips": [{"interface": 0, "address": "10.0.0.2/24"}]}"#,
        ] {
            let r = CniResult::parse(odd.as_bytes()).unwrap();
            assert!(r.pod_address("eth0").is_err(), "{odd}");
        }
        // A bad gateway is no gateway.
        let r = CniResult::parse(
            br#"{"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24", "gateway": "x"}]}"#,
        )
        .unwrap();
        assert_eq!(r.pod_address("eth0").unwrap().gateway, Ipv4Addr::UNSPECIFIED);
    }

    #[test]
    fn plugin_errors_are_read_and_shown() {
        let e = PluginError::parse(
            br#"{"cniVersion": "1.0.0", "code": 999, "msg": "failed to allocate for range 0: no IP addresses available in range set: 10.250.0.1-10.250.0.2"}"#,
        )
        .unwrap();
        assert_eq!(
            e.to_string(),
            "failed to allocate for range 0: no IP addresses available in range set: \
             10.250.0.1-10.250.0.2 [code 999]"
        );
        let e = PluginError::parse(br#"{"code": 7, "msg": "bad", "details": "more"}"#).unwrap();
        assert_eq!(e.to_string(), "bad (more) [code 7]");
        for bad in ["", "panic: runtime error", r#"{"msg": "no code"}"#, r#"{"code": -1}"#] {
            assert!(PluginError::parse(bad.as_bytes()).is_none(), "{bad}");
        }
    }
}
