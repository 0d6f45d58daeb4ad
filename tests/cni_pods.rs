//! Pods of `ringfence up` on CNI networks from Debian's reference plugins: the default
//! network, a conflist a user drops in (another bridge, a /30), bad configurations and an
//! exhausted range as pod Events naming the cause while other pods keep running, and a node
//! killed with its pods attached whose leases the restarted runtime gives back.

mod common;
#[path = "../images/tests/common/mod.rs"]
mod image_common;
#[path = "common/node.rs"]
mod node;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Cluster, eventually};

fn pod(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  runtimeClassName: sentry\n  \
         terminationGracePeriodSeconds: 1\n  containers: [{{name: main, image: web:v1, \
         imagePullPolicy: Never, command: [sleep, \"3600\"]}}]\n"
    )
}

fn phase_and_ip(c: &Cluster, name: &str) -> (String, String) {
    let p = c.json(&["get", "pod", name]);
    let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    (s(&p["status"]["phase"]), s(&p["status"]["podIP"]))
}

fn running(c: &Cluster, name: &str) -> bool {
    phase_and_ip(c, name).0 == "Running"
}

fn events_of(c: &Cluster, pod: &str) -> String {
    c.ok(&["get", "events", "--field-selector", &format!("involvedObject.name={pod}")])
}

/// The addresses host-local has leased in `dir`.
fn leases(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|n| n.parse::<std::net::Ipv4Addr>().is_ok())
        .collect()
}

fn ports(bridge: &str) -> usize {
    std::fs::read_dir(format!("/sys/class/net/{bridge}/brif")).map(|d| d.count()).unwrap_or(0)
}

/// The default network's lease directory (the only network in the runtime's IPAM dir).
fn default_leases(c: &Cluster) -> PathBuf {
    let ipam = c.data_dir().join("cni/ipam");
    let mut nets: Vec<PathBuf> =
        std::fs::read_dir(&ipam).unwrap().flatten().map(|e| e.path()).collect();
    assert_eq!(nets.len(), 1, "{nets:?}");
    nets.remove(0)
}

/// Removes the bridge of the user's network at the end.
struct UserBridge(String);

impl Drop for UserBridge {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip").args(["link", "del", &self.0]).output();
    }
}

#[test]
fn pods_get_cni_networks_and_bad_ones_become_events_naming_the_cause() {
    let _watchdog = common::watchdog("cni_pods", Duration::from_secs(400));
    let started = Instant::now();
    let c = Cluster::up(&[]);
    let images = tempfile::tempdir().unwrap();
    node::import_busybox_image(c.data_dir(), images.path(), "web:v1", &[]);
    let conf = c.data_dir().join("cni/net.d");
    assert!(conf.join("99-ringfence-default.conflist").exists());

    // The default network: bridge + host-local from the node's pod subnet.
    c.apply(&pod("keeper"), &[]);
    assert!(eventually(Duration::from_secs(60), || running(&c, "keeper")), "keeper never ran");
    let keeper_ip = phase_and_ip(&c, "keeper").1;
    let default = default_leases(&c);
    assert_eq!(leases(&default), std::slice::from_ref(&keeper_ip));

    // A broken conflist: the pod's Event names the file and what is wrong with it.
    std::fs::write(conf.join("05-broken.conflist"), "{\"cniVersion\": \"1.0.0\", ").unwrap();
    c.apply(&pod("second"), &[]);
    assert!(
        eventually(Duration::from_secs(30), || {
            let ev = events_of(&c, "second");
            ev.contains("FailedCreatePodSandBox")
                && ev.contains("05-broken.conflist")
                && ev.contains("invalid JSON")
        }),
        "{}",
        events_of(&c, "second")
    );
    assert_eq!(c.ok(&["exec", "keeper", "--", "echo", "still here"]).trim(), "still here");

    // The user's own network replaces it: another bridge, a /30 with one pod address.
    let pid = std::process::id();
    let bridge = UserBridge(format!("rfcu{}", pid % 100_000));
    let user_leases = c.data_dir().join("user-ipam");
    let subnet = format!("10.138.{}.0/30", pid % 250);
    let user = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "user-net",
        "plugins": [{"type": "bridge", "bridge": bridge.0, "isGateway": true, "ipam": {
            "type": "host-local", "ranges": [[{"subnet": subnet}]],
            "routes": [{"dst": "0.0.0.0/0"}], "dataDir": user_leases}}]
    });
    std::fs::write(conf.join("10-user.conflist"), user.to_string()).unwrap();
    std::fs::remove_file(conf.join("05-broken.conflist")).unwrap();
    let user_ip = subnet.replace(".0/30", ".2");
    assert!(
        eventually(Duration::from_secs(60), || phase_and_ip(&c, "second")
            == ("Running".into(), user_ip.clone())),
        "second: {:?}",
        phase_and_ip(&c, "second")
    );
    assert_eq!(ports(&bridge.0), 1);
    println!(
        "keeper at {keeper_ip}, second at {user_ip} ({:.1} s)",
        started.elapsed().as_secs_f64()
    );

    // The /30 is full: the next pod's Event says so; the others keep running.
    c.apply(&pod("third"), &[]);
    assert!(
        eventually(Duration::from_secs(30), || events_of(&c, "third")
            .contains("no IP addresses available")),
        "{}",
        events_of(&c, "third")
    );
    assert!(running(&c, "keeper") && running(&c, "second"));
    println!("{}", events_of(&c, "third"));
    c.ok(&["delete", "pod", "third", "--wait=true"]);

    // Deleted pods leave no veth, lease or cache entry behind.
    c.ok(&["delete", "pod", "keeper", "--wait=true"]);
    assert!(
        eventually(Duration::from_secs(20), || leases(&default).is_empty()),
        "{:?}",
        leases(&default)
    );

    // A node killed with a pod attached: the restarted runtime detaches it (CNI DEL), so the
    // /30's only address is free again for the pod's new sandbox.
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(c.pid() as i32, libc::SIGKILL) };
    let c = c.restart();
    let restarted = |c: &Cluster| {
        let p = c.json(&["get", "pod", "second"]);
        p["status"]["containerStatuses"][0]["restartCount"].as_i64() == Some(1)
    };
    assert!(
        eventually(Duration::from_secs(60), || restarted(&c)
            && phase_and_ip(&c, "second") == ("Running".into(), user_ip.clone())),
        "second after the restart: {:?} {}",
        phase_and_ip(&c, "second"),
        events_of(&c, "second")
    );
    assert_eq!(ports(&bridge.0), 1);
    assert_eq!(std::fs::read_dir(c.data_dir().join("cni/cache")).unwrap().count(), 1);

    c.ok(&["delete", "pod", "second", "--wait=true"]);
    assert!(
        eventually(Duration::from_secs(20), || leases(&user_leases.join("user-net")).is_empty()
            && ports(&bridge.0) == 0),
        "{:?}",
        leases(&user_leases.join("user-net"))
    );
    assert_eq!(std::fs::read_dir(c.data_dir().join("cni/cache")).unwrap().count(), 0);
    // The runtime removes its default bridge when it stops, though a user's list is in use.
    let default_bridge = default.file_name().unwrap().to_str().unwrap().replace("ringfence-", "");
    drop(c);
    assert!(!Path::new("/sys/class/net").join(&default_bridge).exists(), "{default_bridge}");
    drop(bridge);
    println!("CNI pods test: {:.1} s", started.elapsed().as_secs_f64());
}
