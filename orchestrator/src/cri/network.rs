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
        // Read from sysfs: nothing to start when the bridge is there and up (IFF_UP).
        let sys = PathBuf::from("/sys/class/net").join(&self.bridge);
        let up = std::fs::read_to_string(sys.join("flags"))
            .ok()
            .and_then(|f| u32::from_str_radix(f.trim().trim_start_matches("0x"), 16).ok())
            .is_some_and(|flags| flags & 1 != 0);
        if !sys.exists() {
            ip(&["link", "add", &self.bridge, "type", "bridge"])?;
            ip(&["addr", "add", &format!("{}/24", self.gateway()), "dev", &self.bridge])?;
        }
        if !up {
            ip(&["link", "set", &self.bridge, "up"])?;
        }
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
        let (ns, veth, bridge) = (&pod.netns, &pod.host_veth, &self.bridge);
        let outside = [
            format!("netns add {ns}"),
            format!("link add {veth} type veth peer name eth0 netns {ns}"),
            format!("link set {veth} master {bridge} up"),
            // The address may have been another pod's a moment ago: forget its old neighbour.
            format!("neigh flush to {} dev {bridge}", pod.ip),
        ];
        let inside = [
            format!("addr add {}/24 dev eth0", pod.ip),
            "link set eth0 up".to_owned(),
            "link set lo up".to_owned(),
            format!("route add default via {}", self.gateway()),
        ];
        let result = batch("ip", None, &outside).and_then(|()| batch("ip", Some(ns), &inside));
        if let Err(e) = result {
            self.teardown(&pod);
            return Err(e);
        }
        Ok(pod)
    }

    /// Removes a pod's namespace (its veth goes with it) and frees its address.
    pub fn teardown(&self, pod: &PodNet) {
        let _ = ip(&["netns", "del", &pod.netns]);
        let _ = ip(&["link", "del", &pod.host_veth]);
        self.used.lock().unwrap_or_else(|e| e.into_inner()).remove(&pod.ip.octets()[3]);
    }
}
