//! The networks around the clusters: the second node's namespace joined to the host by a
//! routed veth link, a namespace holding the 100 endpoint addresses of the many-endpoint
//! Service, the address ranges of a run, and finding the namespace that holds an address.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use super::model::ProxyMode;

/// Addresses of one benchmark process, apart from other runs' (by process id) and from the
/// ranges the overhead report (10.213/16) and the test suites (10.138-10.250, 172.30/16,
/// 172.31/16) use.
pub struct Ranges {
    /// First of eight /24s: per proxy mode node A's and node B's pod ranges and Services,
    /// then the endpoint namespace's.
    base: [u8; 3],
    /// The link between the nodes, a /30 of 172.29/16.
    link: u8,
    tag: u32,
}

impl Ranges {
    pub fn for_process() -> Ranges {
        let pid = std::process::id();
        Ranges {
            base: [10, 124, ((pid % 32) * 8) as u8],
            link: (pid % 64) as u8,
            tag: pid % 10_000,
        }
    }

    fn slash24(&self, i: u8) -> String {
        let [a, b, c] = self.base;
        format!("{a}.{b}.{}.0/24", c + i)
    }

    fn mode_index(mode: ProxyMode) -> u8 {
        match mode {
            ProxyMode::Nftables => 0,
            ProxyMode::Userspace => 1,
        }
    }

    pub fn node_a_pods(&self, mode: ProxyMode) -> String {
        self.slash24(Self::mode_index(mode) * 3)
    }

    /// node B's range comes from the control plane: this one-range cluster CIDR.
    pub fn node_b_pods(&self, mode: ProxyMode) -> String {
        self.slash24(Self::mode_index(mode) * 3 + 1)
    }

    pub fn services(&self, mode: ProxyMode) -> String {
        self.slash24(Self::mode_index(mode) * 3 + 2)
    }

    /// The endpoint namespace's /24: the host at .1, endpoints from .10 on.
    pub fn endpoints_net(&self) -> [u8; 3] {
        let [a, b, c] = self.base;
        [a, b, c + 6]
    }

    /// Node A's default bridge (one per cluster, so that the runs do not share one).
    pub fn bridge(&self, mode: ProxyMode) -> String {
        format!("rfbn{}{}", self.tag, Self::mode_index(mode))
    }

    fn name(&self, what: &str) -> String {
        format!("rfbn{what}{}", self.tag)
    }
}

pub fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip").args(args).stdin(Stdio::null()).output().context("running ip")?;
    if !out.status.success() {
        bail!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// A network namespace joined to the host by a veth pair; removed when dropped.
pub struct Namespace {
    pub name: String,
    host_link: String,
}

impl Namespace {
    /// The namespace `name`, its end of the link `eth0` at `inside` and the host's at
    /// `host` (both with prefix `len`), routing everything else to the host.
    fn create(name: String, host_link: String, host: Ipv4Addr, len: u8) -> anyhow::Result<Self> {
        ip(&["netns", "add", &name])?;
        let ns = Namespace { name, host_link };
        let name = ns.name.as_str();
        ip(&["link", "add", &ns.host_link, "type", "veth", "peer", "name", "eth0", "netns", name])?;
        ip(&["addr", "add", &format!("{host}/{len}"), "dev", &ns.host_link])?;
        ip(&["link", "set", &ns.host_link, "up"])?;
        ip(&["-n", name, "link", "set", "eth0", "up"])?;
        ip(&["-n", name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Runs `program` with `args` inside the namespace.
    pub fn command(&self, program: &std::path::Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
        let _ = ip(&["link", "del", &self.host_link]);
    }
}

/// Node B's namespace: a routed link to the host (node A), nothing shared at L2 beyond it.
pub struct NodeLink {
    pub ns: Namespace,
    pub host_ip: Ipv4Addr,
    pub node_ip: Ipv4Addr,
}

impl NodeLink {
    pub fn create(r: &Ranges) -> anyhow::Result<NodeLink> {
        let host_ip = Ipv4Addr::new(172, 29, r.link, 1);
        let node_ip = Ipv4Addr::new(172, 29, r.link, 2);
        let ns = Namespace::create(r.name("b"), r.name("bh"), host_ip, 30)?;
        ip(&["-n", &ns.name, "addr", "add", &format!("{node_ip}/30"), "dev", "eth0"])?;
        Ok(NodeLink { ns, host_ip, node_ip })
    }
}

/// The many-endpoint Service's endpoints: `count` addresses on one interface of a namespace
/// behind node A, all served by one listener (see the module of the run for why).
pub struct EndpointNet {
    pub ns: Namespace,
    pub addresses: Vec<Ipv4Addr>,
}

impl EndpointNet {
    /// The namespace with `count` addresses (the `ip -batch` script goes in `dir`).
    pub fn create(r: &Ranges, count: u8, dir: &std::path::Path) -> anyhow::Result<EndpointNet> {
        let [a, b, c] = r.endpoints_net();
        let gateway = Ipv4Addr::new(a, b, c, 1);
        let ns = Namespace::create(r.name("e"), r.name("eh"), gateway, 24)?;
        let addresses: Vec<Ipv4Addr> = (0..count).map(|i| Ipv4Addr::new(a, b, c, 10 + i)).collect();
        let script: String =
            addresses.iter().map(|x| format!("addr add {x}/24 dev eth0\n")).collect();
        let path = dir.join("endpoints.batch");
        std::fs::write(&path, script)?;
        let batch = ip(&["-n", &ns.name, "-batch", &path.to_string_lossy()]);
        let _ = std::fs::remove_file(&path);
        batch?;
        ip(&["-n", &ns.name, "route", "add", "default", "via", &gateway.to_string()])?;
        Ok(EndpointNet { ns, addresses })
    }
}

/// A process in the network namespace that holds `addr` (any namespace on the host, named or
/// not: node B's pods' namespaces are named only inside node B's mount namespace), so that
/// `/proc/PID/ns/net` enters it.
pub fn process_in_namespace_of(addr: Ipv4Addr) -> anyhow::Result<u32> {
    let own = std::fs::read_link("/proc/self/ns/net").ok();
    let mut by_ns: BTreeMap<std::path::PathBuf, u32> = BTreeMap::new();
    for e in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(ns) = std::fs::read_link(e.path().join("ns/net"))
            && Some(&ns) != own.as_ref()
        {
            by_ns.entry(ns).or_insert(pid);
        }
    }
    let want = format!(" {addr}/");
    for pid in by_ns.into_values() {
        let out = Command::new("nsenter")
            .arg(format!("--net=/proc/{pid}/ns/net"))
            .args(["ip", "-4", "-o", "addr", "show"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .context("running nsenter (util-linux)")?;
        if String::from_utf8_lossy(&out.stdout).contains(&want) {
            return Ok(pid);
        }
    }
    bail!("no network namespace holds {addr}")
}
