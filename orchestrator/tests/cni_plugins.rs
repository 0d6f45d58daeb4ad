//! Pod networks from the real reference CNI plugins (Debian's containernetworking-plugins,
//! installed by scripts/setup): attachments, a user's conflist, bad configurations and an
//! exhausted range, and what is left on the host afterwards (veths on the bridge, host-local
//! leases, namespaces, cache entries): nothing.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_cri::v1 as cri;
use orchestrator::cri::network::{NetworkConfig, PodNet, PodNetwork};

/// Fails the whole test binary rather than hanging it (a plugin wedged in the kernel).
fn watchdog() {
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(120));
        eprintln!("cni_plugins: watchdog expired");
        std::process::exit(101);
    });
}

/// A bridge name and /24 of this process's own (tests of other binaries use 10.150-249).
fn unique(tag: char) -> (String, String) {
    let pid = std::process::id();
    let third = pid % 250;
    let second = 140 + (tag as u32 % 10);
    (format!("rfc{}{tag}", pid % 100_000), format!("10.{second}.{third}.0/24"))
}

struct Node {
    _dir: tempfile::TempDir,
    state: PathBuf,
    conf: PathBuf,
    bridge: String,
    cidr: String,
}

impl Node {
    fn new(tag: char) -> Node {
        assert!(
            Path::new("/usr/lib/cni/bridge").exists(),
            "the reference CNI plugins are missing: run scripts/setup"
        );
        let dir = tempfile::tempdir().unwrap();
        let (bridge, cidr) = unique(tag);
        Node {
            state: dir.path().join("cni"),
            conf: dir.path().join("cni/net.d"),
            _dir: dir,
            bridge,
            cidr,
        }
    }

    /// The runtime's network, as `ringfence cri` sets it up at its start.
    fn network(&self) -> PodNetwork {
        PodNetwork::new(self.config()).unwrap()
    }

    /// The runtime's network when it was started without a pod range.
    fn network_without_range(&self) -> PodNetwork {
        PodNetwork::new(NetworkConfig { pod_cidr: None, ..self.config() }).unwrap()
    }

    fn config(&self) -> NetworkConfig {
        NetworkConfig {
            conf_dir: self.conf.clone(),
            bin_dirs: vec!["/usr/lib/cni".into()],
            state_dir: self.state.clone(),
            bridge: self.bridge.clone(),
            pod_cidr: Some(self.cidr.clone()),
        }
    }

    /// The host-local leases of network `name` in the runtime's own IPAM directory.
    fn leases(&self, name: &str) -> Vec<Ipv4Addr> {
        leases(&self.state.join("ipam").join(name))
    }

    fn cached(&self) -> usize {
        std::fs::read_dir(self.state.join("cache")).map(|d| d.count()).unwrap_or(0)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip").args(["link", "del", &self.bridge]).output();
    }
}

fn leases(dir: &Path) -> Vec<Ipv4Addr> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect()
}

/// The interfaces enslaved to `bridge`: the pods' host-side veths.
fn ports(bridge: &str) -> usize {
    std::fs::read_dir(format!("/sys/class/net/{bridge}/brif")).map(|d| d.count()).unwrap_or(0)
}

fn sandbox(name: &str) -> cri::PodSandboxConfig {
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: "default".into(),
            attempt: 0,
        }),
        ..Default::default()
    }
}

/// A fresh sandbox id, as the runtime makes them.
fn id() -> String {
    orchestrator::cri::new_id()
}

fn ip_in(pod: &PodNet, args: &[&str]) -> String {
    let out =
        std::process::Command::new("ip").args(["-n", &pod.netns]).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_default_network_attaches_pods_and_leaves_nothing_after_tear_down_or_restart() {
    watchdog();
    let node = Node::new('a');
    let net = node.network();
    let name = format!("ringfence-{}", node.bridge);
    assert!(node.conf.join("99-ringfence-default.conflist").exists());
    let (a, b) =
        (net.setup(&id(), &sandbox("a")).unwrap(), net.setup(&id(), &sandbox("b")).unwrap());
    let subnet = node.cidr.trim_end_matches(".0/24");
    for p in [&a, &b] {
        assert!(p.ip.to_string().starts_with(subnet), "{p:?} in {}", node.cidr);
        assert_eq!((p.prefix, p.gateway.to_string()), (24, format!("{subnet}.1")));
        // The bridge plugin made eth0 in the pod's namespace, and loopback is up.
        assert!(ip_in(p, &["-o", "addr", "show", "eth0"]).contains(&format!("{}/24", p.ip)));
        assert!(ip_in(p, &["-o", "link", "show", "lo"]).contains(",UP"));
        assert!(ip_in(p, &["route"]).contains(&format!("default via {subnet}.1")));
        assert!(!p.host_ports_by_plugin);
    }
    assert_ne!(a.ip, b.ip);
    assert_eq!(ports(&node.bridge), 2);
    let mut held = node.leases(&name);
    held.sort();
    let mut want = vec![a.ip, b.ip];
    want.sort();
    assert_eq!(held, want);
    net.check(&a).unwrap();
    net.check(&b).unwrap();

    net.teardown(&a);
    assert_eq!(ports(&node.bridge), 1);
    assert_eq!(node.leases(&name), [b.ip]);
    assert!(!a.netns_path.exists());
    assert_eq!(node.cached(), 1);

    // The runtime dies with b attached; the next one detaches it before serving.
    drop(net);
    let net = node.network();
    assert_eq!(net.sweep(), 1);
    assert_eq!(ports(&node.bridge), 0);
    assert!(node.leases(&name).is_empty());
    assert!(!b.netns_path.exists());
    assert_eq!(node.cached(), 0);
    net.remove_bridge();
    assert!(!Path::new("/sys/class/net").join(&node.bridge).exists());
}

#[test]
fn a_users_conflist_is_used_and_bad_input_fails_naming_the_cause() {
    watchdog();
    let node = Node::new('b');
    let net = node.network();
    // The user's network: another bridge, a /30 with room for one pod, its own leases.
    let (user_bridge, _) = unique('u');
    let user_leases = node._dir.path().join("user-ipam");
    let third = std::process::id() % 250;
    let user = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "user-net",
        "plugins": [
            {"type": "bridge", "bridge": user_bridge, "isGateway": true, "ipam": {
                "type": "host-local", "ranges": [[{"subnet": format!("10.139.{third}.0/30")}]],
                "routes": [{"dst": "0.0.0.0/0"}], "dataDir": user_leases}},
            {"type": "portmap", "capabilities": {"portMappings": true}, "snat": false}
        ]
    });
    // portmap needs iptables, which the node need not have: the user's list uses only the
    // bridge here, and a second list checks that capabilities are passed on.
    let mut bridge_only = user.clone();
    bridge_only["plugins"].as_array_mut().unwrap().truncate(1);
    std::fs::write(node.conf.join("10-user.conflist"), bridge_only.to_string()).unwrap();
    let cleanup = Cleanup(user_bridge.clone());

    let first = net.setup(&id(), &sandbox("first")).unwrap();
    assert_eq!(first.ip, format!("10.139.{third}.2").parse::<Ipv4Addr>().unwrap());
    assert_eq!(first.prefix, 30);
    assert_eq!(ports(&user_bridge), 1);
    assert_eq!(ports(&node.bridge), 0);

    // The range is exhausted: the error says so, and the failed attempt leaves nothing.
    let full = id();
    let e = net.setup(&full, &sandbox("second")).unwrap_err().to_string();
    assert!(e.contains("no IP addresses available"), "{e}");
    assert!(e.starts_with("pod network: CNI plugin bridge failed ADD"), "{e}");
    assert_eq!(ports(&user_bridge), 1);
    assert_eq!(leases(&user_leases.join("user-net")), [first.ip]);
    assert!(!Path::new(&format!("/run/netns/rf-{}", &full[..12])).exists());
    assert_eq!(node.cached(), 1);

    // Bad configurations, each named with its cause; nothing is attached or left.
    let bad = [
        ("05-broken.conflist", "{\"cniVersion\": ".to_owned(), "invalid JSON"),
        (
            "05-version.conflist",
            r#"{"cniVersion": "0.1.0", "name": "n", "plugins": [{"type": "bridge"}]}"#.to_owned(),
            "cniVersion \"0.1.0\" is not supported",
        ),
        ("05-fields.conf", r#"{"cniVersion": "1.0.0", "name": "n"}"#.to_owned(), "no \"type\""),
        (
            "05-missing.conflist",
            r#"{"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "no-such-plugin"}]}"#
                .to_owned(),
            "CNI plugin \"no-such-plugin\" not found in /usr/lib/cni",
        ),
    ];
    for (file, text, why) in &bad {
        let path = node.conf.join(file);
        std::fs::write(&path, text).unwrap();
        let e = net.setup(&id(), &sandbox("bad")).unwrap_err().to_string();
        assert!(e.contains(why), "{file}: {e}");
        if !file.contains("missing") {
            assert!(e.contains(file), "{file}: {e}");
        }
        std::fs::remove_file(&path).unwrap();
        assert_eq!(node.cached(), 1, "{file}");
    }
    // The pod attached before all this still has its address.
    assert!(ip_in(&first, &["-o", "addr", "show", "eth0"]).contains(&first.ip.to_string()));

    // A plugin that declares portMappings gets the sandbox's host ports (and the runtime
    // opens none itself); Debian's portmap fails without iptables, naming it.
    std::fs::write(node.conf.join("10-user.conflist"), user.to_string()).unwrap();
    net.teardown(&first);
    let mut with_ports = sandbox("ports");
    with_ports.port_mappings = vec![cri::PortMapping {
        protocol: cri::Protocol::Tcp as i32,
        container_port: 80,
        host_port: 18080,
        host_ip: String::new(),
    }];
    match net.setup(&id(), &with_ports) {
        Ok(p) => {
            assert!(p.host_ports_by_plugin);
            net.teardown(&p);
        }
        Err(e) => assert!(e.to_string().contains("CNI plugin portmap failed ADD"), "{e}"),
    }
    assert_eq!(ports(&user_bridge), 0);
    assert!(leases(&user_leases.join("user-net")).is_empty());
    assert_eq!(node.cached(), 0);
    drop(cleanup);
}

/// Removes a bridge the test made through a user's conflist.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip").args(["link", "del", &self.0]).output();
    }
}

#[test]
fn a_runtime_started_without_a_range_takes_the_nodes() {
    watchdog();
    let node = Node::new('c');
    let net = node.network_without_range();
    // No range and no user list: nothing to attach with, and the error says what is missing.
    let early = id();
    let err = net.setup(&early, &sandbox("early")).unwrap_err().to_string();
    assert!(err.contains("pod range"), "{err}");
    assert!(!Path::new("/run/netns").join(format!("rf-{}", &early[..12])).exists());
    // The node agent passes the Node's range (CRI UpdateRuntimeConfig): pods get addresses in it.
    assert!(net.set_pod_cidr("not-a-range").is_err());
    net.set_pod_cidr(&node.cidr).unwrap();
    net.set_pod_cidr(&node.cidr).unwrap();
    let pod = net.setup(&id(), &sandbox("late")).unwrap();
    let range: ipnet::Ipv4Net = node.cidr.parse().unwrap();
    assert!(range.contains(&pod.ip), "{} outside {range}", pod.ip);
    assert_eq!(pod.gateway, range.hosts().next().unwrap());
    // Another range later is refused, naming both: addresses already handed out stay valid.
    let other = net.set_pod_cidr("10.139.0.0/24").unwrap_err().to_string();
    assert!(other.contains("10.139.0.0/24") && other.contains(&node.cidr), "{other}");
    net.teardown(&pod);
    net.remove_bridge();
}

#[test]
fn a_range_another_link_already_serves_is_refused() {
    watchdog();
    let node = Node::new('d');
    // Another link (a pod network left behind, another cluster) holds the range's gateway.
    let other = format!("rfx{}", std::process::id() % 100_000);
    let gateway = node.cidr.replace(".0/24", ".1/24");
    let sh = |args: &[&str]| std::process::Command::new("ip").args(args).output().unwrap();
    assert!(sh(&["link", "add", &other, "type", "bridge"]).status.success());
    sh(&["addr", "add", &gateway, "dev", &other]);
    let err = PodNetwork::new(node.config()).err().map(|e| e.to_string()).unwrap_or_default();
    sh(&["link", "del", &other]);
    assert!(err.contains("already on") && err.contains(&other), "{err}");
    assert!(!Path::new("/sys/class/net").join(&node.bridge).exists(), "no bridge was made");
}
