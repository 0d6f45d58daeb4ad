//! Pod networking on a node: every pod sandbox gets a network namespace, attached by the CNI
//! plugins of the configuration directory's network list ([`super::cni`]). Unless a user's
//! list is there, that is the default one: the reference `bridge` plugin with `host-local`
//! addresses from the node's pod subnet on the node's bridge.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_cri::v1 as cri;
use serde_json::{Map, Value, json};

use super::CriError;
use super::cni::config::{self, Ipv4Cidr};
use super::cni::{AttachRequest, Cni, CniError};

/// The interface every pod gets (the microVM handler takes it over for its guest).
pub const IFNAME: &str = "eth0";

/// Where the node's pod networks come from.
pub struct NetworkConfig {
    /// The CNI configuration directory.
    pub conf_dir: PathBuf,
    /// Where plugin executables are looked for, in order.
    pub bin_dirs: Vec<PathBuf>,
    /// The runtime's own CNI state: the attachment cache and the default network's leases.
    pub state_dir: PathBuf,
    /// The default network's bridge and subnet; without a subnet, the default list waits for
    /// the node's pod range (CRI UpdateRuntimeConfig).
    pub bridge: String,
    pub pod_cidr: Option<String>,
}

pub struct PodNetwork {
    cni: Cni,
    conf_dir: PathBuf,
    ipam_dir: PathBuf,
    /// The default network's bridge (set up when the default list is in use).
    bridge: String,
    /// The default network's subnet, once known.
    subnet: std::sync::Mutex<Option<Ipv4Cidr>>,
}

/// One pod's network.
#[derive(Clone, Debug)]
pub struct PodNet {
    pub netns: String,
    pub netns_path: PathBuf,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    /// A plugin of the network maps the pod's host ports (`portMappings`): the runtime
    /// opens none itself.
    pub host_ports_by_plugin: bool,
    /// The sandbox, as CNI knows it (`CNI_CONTAINERID`).
    id: String,
}

/// Runs `program` (`ip` or `tc`) once for several commands (`-batch`), in network namespace
/// `netns` if given: every program started costs a fork and an exec, which add up where
/// they are slow (a node inside an emulated VM).
pub fn batch(program: &str, netns: Option<&str>, lines: &[String]) -> Result<(), CriError> {
    use std::io::Write;
    let mut cmd = Command::new(program);
    if let Some(ns) = netns {
        cmd.args(["-n", ns]);
    }
    let shown = || format!("{program} -batch [{}]", lines.join("; "));
    let mut child = cmd
        .args(["-batch", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| CriError::Network(format!("{}: {e}", shown())))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(lines.join("\n").as_bytes());
    }
    let out =
        child.wait_with_output().map_err(|e| CriError::Network(format!("{}: {e}", shown())))?;
    if !out.status.success() {
        return Err(CriError::Network(format!(
            "{}: {}",
            shown(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
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

/// The link that holds IPv4 address `addr`, if any.
fn link_with_address(addr: &str) -> Option<String> {
    let out = Command::new("ip").args(["-4", "-o", "addr", "show", "to", addr]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "7: rf0    inet 10.88.0.1/24 ...": the second field.
    text.lines().next()?.split_whitespace().nth(1).map(|l| l.trim_end_matches(':').to_owned())
}

/// A fixed, locally administered MAC address for bridge `name` (the same on every start).
fn bridge_mac(name: &str) -> String {
    // FNV-1a: stable across runs and builds, unlike std's hasher.
    let h = name
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let b = h.to_be_bytes();
    format!("02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[3], b[4], b[5], b[6], b[7])
}

fn parse_subnet(cidr: &str) -> Result<Ipv4Cidr, CriError> {
    Ipv4Cidr::parse(cidr).map_err(|e| CriError::Invalid(format!("pod CIDR {e}")))
}

impl From<CniError> for CriError {
    fn from(e: CniError) -> CriError {
        CriError::Network(e.to_string())
    }
}

/// `CNI_ARGS` as Kubernetes runtimes pass them; values that would break the `K=V;` syntax
/// are left out.
fn cni_args(id: &str, config: &cri::PodSandboxConfig) -> String {
    let mut args = vec![("IgnoreUnknown", "1"), ("K8S_POD_INFRA_CONTAINER_ID", id)];
    if let Some(m) = &config.metadata {
        args.extend([
            ("K8S_POD_NAMESPACE", m.namespace.as_str()),
            ("K8S_POD_NAME", m.name.as_str()),
            ("K8S_POD_UID", m.uid.as_str()),
        ]);
    }
    args.iter()
        .filter(|(_, v)| !v.is_empty() && !v.contains([';', '=']))
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(";")
}

/// The `portMappings` capability's value: the sandbox's host ports.
fn port_mappings(config: &cri::PodSandboxConfig) -> Option<Value> {
    let maps: Vec<Value> = config
        .port_mappings
        .iter()
        .filter(|m| m.host_port > 0)
        .map(|m| {
            let protocol = match cri::Protocol::try_from(m.protocol) {
                Ok(cri::Protocol::Udp) => "udp",
                Ok(cri::Protocol::Sctp) => "sctp",
                _ => "tcp",
            };
            let mut v = json!({
                "hostPort": m.host_port,
                "containerPort": m.container_port,
                "protocol": protocol,
            });
            if !m.host_ip.is_empty() {
                v["hostIP"] = m.host_ip.clone().into();
            }
            v
        })
        .collect();
    (!maps.is_empty()).then_some(Value::Array(maps))
}

impl PodNet {
    /// A network namespace someone else made and configured (containerd's CRI plugin through
    /// its own CNI call), joined as it is: its address is not known here.
    pub fn existing(netns_path: PathBuf) -> PodNet {
        PodNet {
            netns: String::new(),
            netns_path,
            ip: Ipv4Addr::UNSPECIFIED,
            prefix: 0,
            gateway: Ipv4Addr::UNSPECIFIED,
            host_ports_by_plugin: true,
            id: String::new(),
        }
    }
}

impl PodNetwork {
    /// Writes the default list unless the configuration directory has another, and sets the
    /// default bridge up when it is in use.
    pub fn new(c: NetworkConfig) -> Result<PodNetwork, CriError> {
        let subnet = c.pod_cidr.as_deref().map(parse_subnet).transpose()?;
        if c.bridge.is_empty() || c.bridge.len() > 15 {
            return Err(CriError::Invalid(format!("bridge name {:?}: 1 to 15 bytes", c.bridge)));
        }
        // Absolute: plugins run elsewhere than the runtime's working directory.
        let state = std::path::absolute(&c.state_dir)?;
        let cni = Cni::new(&c.conf_dir, c.bin_dirs, &state.join("cache"));
        let net = PodNetwork {
            cni,
            conf_dir: c.conf_dir,
            ipam_dir: state.join("ipam"),
            bridge: c.bridge,
            subnet: std::sync::Mutex::new(None),
        };
        match subnet {
            Some(subnet) => net.use_subnet(subnet)?,
            None => tracing::info!("the default pod network waits for the node's pod range"),
        }
        Ok(net)
    }

    /// Makes `subnet` the default network's: writes the default list unless a user's is
    /// there, and sets the bridge up when the default is in use.
    fn use_subnet(&self, subnet: Ipv4Cidr) -> Result<(), CriError> {
        let default = config::default_list(&self.bridge, subnet, &self.ipam_dir);
        if config::ensure_default(&self.conf_dir, &default)? {
            self.ensure_bridge(subnet)?;
        } else {
            let dir = self.conf_dir.display();
            tracing::info!(dir = %dir, "pod networks from the CNI configuration there");
        }
        *self.subnet.lock().unwrap_or_else(|e| e.into_inner()) = Some(subnet);
        Ok(())
    }

    /// The node's pod range as its agent knows it (CRI UpdateRuntimeConfig): adopted when
    /// the runtime was started without one, otherwise it must be the one in use.
    pub fn set_pod_cidr(&self, cidr: &str) -> Result<(), CriError> {
        let subnet = parse_subnet(cidr)?;
        let current = *self.subnet.lock().unwrap_or_else(|e| e.into_inner());
        match current {
            None => self.use_subnet(subnet),
            Some(c) if c == subnet => Ok(()),
            Some(c) => Err(CriError::Invalid(format!(
                "the node's pod range is {subnet} but this runtime's pod network is {c} \
                 (start the runtime with --pod-cidr {subnet}, or without one)"
            ))),
        }
    }

    /// The default network's gateway, once its subnet is known.
    pub fn gateway(&self) -> Option<Ipv4Addr> {
        self.subnet.lock().unwrap_or_else(|e| e.into_inner()).map(|s| s.gateway())
    }

    /// Creates the default bridge with the gateway address before any pod (the node serves
    /// DNS there), as the bridge plugin would, and enables forwarding.
    fn ensure_bridge(&self, subnet: Ipv4Cidr) -> Result<(), CriError> {
        let (bridge, subnet) = (&self.bridge, &subnet);
        // Read from sysfs: nothing to start when the bridge is there and up (IFF_UP).
        let sys = PathBuf::from("/sys/class/net").join(bridge);
        let up = std::fs::read_to_string(sys.join("flags"))
            .ok()
            .and_then(|f| u32::from_str_radix(f.trim().trim_start_matches("0x"), 16).ok())
            .is_some_and(|flags| flags & 1 != 0);
        if !sys.exists() {
            // Another link with this range's gateway (a pod network left behind, another
            // cluster) would take this one's traffic: refuse rather than misroute.
            let gw = format!("{}/{}", subnet.gateway(), subnet.len);
            if let Some(other) = link_with_address(&subnet.gateway().to_string()) {
                return Err(CriError::Network(format!(
                    "the pod range's gateway {gw} is already on {other}: another pod network \
                     uses this range (remove it, or choose another --pod-cidr)"
                )));
            }
            // A bridge without an address of its own takes its lowest port's, which changes as
            // pods come and go, and the bridge plugin's CHECK then fails for the pods before.
            ip(&["link", "add", bridge, "address", &bridge_mac(bridge), "type", "bridge"])?;
            // The plugin accepts exactly this address (its gateway with the subnet's length).
            ip(&["addr", "add", &format!("{}/{}", subnet.gateway(), subnet.len), "dev", bridge])?;
        }
        if !up {
            ip(&["link", "set", bridge, "up"])?;
        }
        let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", "1");
        Ok(())
    }

    /// Removes the default bridge when the runtime stops (its pods are gone by then), also
    /// when an earlier run made it and a user's list is in use now; never one with ports.
    pub fn remove_bridge(&self) {
        let bridge = &self.bridge;
        let unused = || {
            let ports = std::fs::read_dir(format!("/sys/class/net/{bridge}/brif"));
            ports.is_ok_and(|mut p| p.next().is_none())
        };
        // The kernel takes a namespace's veths away after `ip netns del` returns: wait for
        // the last pods' ports to go rather than leave the bridge (and its route) behind.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        while !unused() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        if unused() {
            let _ = ip(&["link", "del", bridge]);
        }
    }

    /// Creates the namespace of pod sandbox `id` and attaches it through the network list
    /// in use now.
    pub fn setup(&self, id: &str, config: &cri::PodSandboxConfig) -> Result<PodNet, CriError> {
        let list = self.cni.config().map_err(|e| match self.gateway() {
            None => CriError::Network(format!(
                "{e} (and the node has not told this runtime its pod range yet: \
                 CRI UpdateRuntimeConfig, or --pod-cidr)"
            )),
            Some(_) => e.into(),
        })?;
        let short = &id[..id.len().min(12)];
        let netns = format!("rf-{short}");
        // Where iproute2 keeps named namespaces (/var/run is /run on current systems).
        let netns_path = PathBuf::from(format!("/run/netns/{netns}"));
        ip(&["netns", "add", &netns])?;
        let mut runtime_config = Map::new();
        if let Some(maps) = port_mappings(config) {
            runtime_config.insert("portMappings".into(), maps);
        }
        let req = AttachRequest {
            container_id: id,
            netns: &netns_path,
            ifname: IFNAME,
            args: cni_args(id, config),
            runtime_config,
        };
        let attached = self.cni.add(&list, req).map_err(CriError::from).and_then(|r| {
            r.pod_address(IFNAME).map_err(|e| {
                let _ = self.cni.del(id);
                CriError::Network(format!("CNI network {}: {e}", list.name))
            })
        });
        let lo = || {
            let has_loopback = list.plugins.iter().any(|p| config::plugin_type(p) == "loopback");
            if has_loopback { Ok(()) } else { ip(&["-n", &netns, "link", "set", "lo", "up"]) }
        };
        let addr = match attached.and_then(|a| lo().map(|()| a)) {
            Ok(a) => a,
            Err(e) => {
                let _ = self.cni.del(id);
                let _ = ip(&["netns", "del", &netns]);
                return Err(e);
            }
        };
        Ok(PodNet {
            netns,
            netns_path,
            ip: addr.ip,
            prefix: addr.prefix,
            gateway: addr.gateway,
            host_ports_by_plugin: list.has_capability("portMappings"),
            id: id.to_owned(),
        })
    }

    /// Detaches a pod (CNI DEL) and removes its namespace. A DEL that fails stays cached and
    /// is tried again when the runtime next starts.
    pub fn teardown(&self, pod: &PodNet) {
        if let Err(e) = self.cni.del(&pod.id) {
            tracing::warn!(sandbox = %pod.id, "pod network tear-down: {e}");
        }
        let _ = ip(&["netns", "del", &pod.netns]);
    }

    /// CNI CHECK of a pod's attachment.
    pub fn check(&self, pod: &PodNet) -> Result<(), CriError> {
        Ok(self.cni.check(&pod.id)?)
    }

    /// Detaches every attachment an earlier run left (at the start, before any pod).
    pub fn sweep(&self) -> usize {
        let ids = self.cni.cached();
        for id in &ids {
            let netns = self.cni.cached_netns(id);
            if let Err(e) = self.cni.del(id) {
                tracing::warn!(sandbox = %id, "left-over pod network: {e}");
            }
            let name =
                netns.as_deref().filter(|p| p.starts_with("/run/netns")).and_then(Path::file_name);
            if let Some(name) = name.and_then(|n| n.to_str()) {
                let _ = ip(&["netns", "del", name]);
            }
        }
        ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_link_holding_an_address_is_found() {
        assert_eq!(link_with_address("127.0.0.1").as_deref(), Some("lo"));
        assert_eq!(link_with_address("192.0.2.254"), None, "TEST-NET-1 is on no link here");
    }

    #[test]
    fn bridge_macs_are_fixed_unicast_and_local() {
        let mac = bridge_mac("rf0");
        assert_eq!(mac, bridge_mac("rf0"));
        assert_ne!(mac, bridge_mac("rf1"));
        assert!(mac.starts_with("02:") && mac.len() == 17, "{mac}");
    }

    #[test]
    fn cni_args_name_the_pod_and_drop_what_would_break_them() {
        let mut c = cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: "web-1".into(),
                uid: "u-1".into(),
                namespace: "default".into(),
                attempt: 0,
            }),
            ..Default::default()
        };
        assert_eq!(
            cni_args("abc", &c),
            "IgnoreUnknown=1;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_NAMESPACE=default;\
             K8S_POD_NAME=web-1;K8S_POD_UID=u-1"
        );
        if let Some(m) = c.metadata.as_mut() {
            m.name = "x;K8S_POD_NAMESPACE=kube-system".into();
        }
        assert!(!cni_args("abc", &c).contains("kube-system"));
    }

    #[test]
    fn host_ports_become_port_mappings() {
        let c = cri::PodSandboxConfig {
            port_mappings: vec![
                cri::PortMapping {
                    protocol: cri::Protocol::Udp as i32,
                    container_port: 53,
                    host_port: 5353,
                    host_ip: "127.0.0.1".into(),
                },
                cri::PortMapping { container_port: 80, ..Default::default() },
            ],
            ..Default::default()
        };
        assert_eq!(
            port_mappings(&c),
            Some(
                json!([{"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"}])
            )
        );
        assert_eq!(port_mappings(&cri::PodSandboxConfig::default()), None);
    }
}
