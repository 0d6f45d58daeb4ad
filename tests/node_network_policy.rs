//! NetworkPolicies enforced on the node, with real connections between Sentry pods of two
//! tenant namespaces (busybox httpd on several ports, wget clients): default-deny ingress with
//! an allowed named port, namespace selectors alone and combined with pod selectors, an
//! ipBlock with an exception and a port range, Services judged on the real client and the
//! chosen endpoint, an egress policy shutting a tenant out of an "Internet" (a network
//! namespace routed from the node), and label and policy changes taking effect while pods run.
//! One cluster serves every check, to keep the suite fast.

mod common;
#[path = "../images/tests/common/mod.rs"]
mod image_common;
#[path = "common/node.rs"]
mod node;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};

use common::Cluster;

/// The whole test may take this long before its watchdog fails it.
const LIMIT: Duration = Duration::from_secs(300);
/// How long a policy or label change may take to show in traffic.
const PROPAGATION: Duration = Duration::from_secs(1);

const MANIFEST: &str = r#"
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata: {name: sentry}
handler: sentry
---
apiVersion: v1
kind: Namespace
metadata: {name: tenant-a, labels: {tenant: a}}
---
apiVersion: v1
kind: Namespace
metadata: {name: tenant-b, labels: {tenant: b}}
---
apiVersion: v1
kind: Namespace
metadata: {name: ops, labels: {team: ops}}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: tenant-a, labels: {app: web}}
spec:
  runtimeClassName: sentry
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: web:v1
    imagePullPolicy: Never
    command: [sh, -c, 'mkdir -p /www; echo ok > /www/ok.html; for p in 8080 9001 9002 9005; do httpd -f -p $p -h /www & done; exec httpd -f -p 80 -h /www']
    ports: [{name: http, containerPort: 80}, {name: alt, containerPort: 8080}]
    readinessProbe: {tcpSocket: {port: 80}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: tenant-a}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
"#;

fn client(ns: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: client, namespace: {ns}, labels: {{app: client}}}}
spec:
  runtimeClassName: sentry
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: web:v1
    imagePullPolicy: Never
    command: [sleep, "3600"]
"#
    )
}

/// A network namespace standing for the Internet: routed from the node over a veth pair, an
/// httpd on its address. Removed on drop.
struct Internet {
    netns: String,
    addr: Ipv4Addr,
    httpd: std::process::Child,
}

impl Internet {
    fn up(dir: &std::path::Path) -> Internet {
        let n = std::process::id();
        let netns = format!("rfnp{n}");
        let (host_if, ns_if) =
            (format!("rfnph{}", n % 1_000_000), format!("rfnpn{}", n % 1_000_000));
        // 198.18.0.0/15 is for benchmarks: nothing real lives there.
        let x = (n % 250) as u8;
        let (host_ip, addr) = (Ipv4Addr::new(198, 18, x, 1), Ipv4Addr::new(198, 18, x, 2));
        let _ = Command::new("ip").args(["netns", "del", &netns]).output();
        let _ = Command::new("ip").args(["link", "del", &host_if]).output();
        let sh = |args: &[&str]| {
            let out = Command::new("ip").args(args).output().expect("run ip");
            assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        sh(&["netns", "add", &netns]);
        sh(&["link", "add", &host_if, "type", "veth", "peer", "name", &ns_if]);
        sh(&["link", "set", &ns_if, "netns", &netns]);
        sh(&["addr", "add", &format!("{host_ip}/30"), "dev", &host_if]);
        sh(&["link", "set", &host_if, "up"]);
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &netns, "ip"];
            all.extend(args);
            sh(&all);
        };
        inside(&["addr", "add", &format!("{addr}/30"), "dev", &ns_if]);
        inside(&["link", "set", &ns_if, "up"]);
        inside(&["link", "set", "lo", "up"]);
        inside(&["route", "add", "default", "via", &host_ip.to_string()]);
        let www = dir.join("www");
        std::fs::create_dir_all(&www).unwrap();
        std::fs::write(www.join("ok.html"), "ok\n").unwrap();
        let httpd = Command::new("ip")
            .args(["netns", "exec", &netns, "busybox", "httpd", "-f", "-p", "80", "-h"])
            .arg(&www)
            .spawn()
            .expect("start busybox httpd");
        Internet { netns, addr, httpd }
    }
}

impl Drop for Internet {
    fn drop(&mut self) {
        common::terminate(&mut self.httpd);
        // Deleting the namespace deletes its veth end, and with it the node's.
        let _ = Command::new("ip").args(["netns", "del", &self.netns]).output();
    }
}

/// From pod `ns/pod`, one HTTP GET of /ok.html per target (`ip:port`): whether each answered,
/// and what wget said.
fn reach(c: &Cluster, ns: &str, pod: &str, targets: &[String]) -> Vec<(bool, String)> {
    let list = targets.join(" ");
    let script = format!(
        "for t in {list}; do if wget -qO- http://$t/ok.html >/dev/null 2>/tmp/err; \
         then echo ok; else echo no $(cat /tmp/err); fi; done"
    );
    let out = c.ok(&["exec", "-n", ns, pod, "--", "sh", "-c", &script]);
    out.lines().map(|l| (l.trim() == "ok", l.trim().to_owned())).collect()
}

/// Waits (up to `PROPAGATION` plus the time the checks take) until every (from, target,
/// allowed) case holds; returns how long that took, or fails naming the cases that did not.
fn expect(c: &Cluster, what: &str, cases: &[(&str, String, bool)]) -> Duration {
    let start = Instant::now();
    loop {
        let mut wrong = Vec::new();
        for from in ["tenant-a", "tenant-b", "ops"] {
            let mine: Vec<&(&str, String, bool)> = cases.iter().filter(|c| c.0 == from).collect();
            if mine.is_empty() {
                continue;
            }
            let targets: Vec<String> = mine.iter().map(|c| c.1.clone()).collect();
            let got = reach(c, from, "client", &targets);
            let missing = (false, "no answer".to_owned());
            let answers = got.iter().chain(std::iter::repeat(&missing));
            for (case, (ok, said)) in mine.iter().zip(answers) {
                if *ok != case.2 {
                    wrong.push(format!("{} -> {}: {said}", case.0, case.1));
                }
            }
        }
        let took = start.elapsed();
        if wrong.is_empty() {
            println!("{what}: as expected after {:.2} s", took.as_secs_f64());
            return took;
        }
        assert!(took < PROPAGATION + Duration::from_secs(4), "{what}: {wrong:?} after {took:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn pod_ip(c: &Cluster, ns: &str, pod: &str) -> Ipv4Addr {
    let p = c.json(&["get", "pod", "-n", ns, pod]);
    p["status"]["podIP"].as_str().expect("a pod IP").parse().expect("IPv4")
}

fn tables() -> String {
    let out = Command::new("nft").args(["list", "tables"]).output().expect("run nft");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `until wget ...` in `ns/client` on its own thread: the time from `change` (called once
/// the loop is running) until the target answered.
fn time_until_open(c: &Cluster, ns: &str, target: &str, change: impl FnOnce()) -> Duration {
    let script = format!(
        "until wget -qO- http://{target}/ok.html >/dev/null 2>&1; do usleep 20000; done; echo open"
    );
    let mut cmd = c.kubectl_cmd();
    cmd.args(["exec", "-n", ns, "client", "--", "sh", "-c", &script]);
    let waiter = std::thread::spawn(move || {
        let out = cmd.output().expect("run kubectl exec");
        (Instant::now(), String::from_utf8_lossy(&out.stdout).into_owned())
    });
    std::thread::sleep(Duration::from_millis(500));
    change();
    let changed = Instant::now();
    let (opened, out) = waiter.join().expect("the waiting thread");
    assert!(out.contains("open"), "{out}");
    opened.saturating_duration_since(changed)
}

#[test]
fn network_policies_isolate_tenants_and_follow_changes() {
    let _watchdog = common::watchdog("the NetworkPolicy test", LIMIT);
    let started = Instant::now();
    let c = Cluster::up(&[]);
    let work = tempfile::tempdir().unwrap();
    node::import_busybox_image(c.data_dir(), &work.path().join("image"), "web:v1", &[]);
    let internet = Internet::up(work.path());
    let clients: String = ["tenant-a", "tenant-b", "ops"].map(client).join("---");
    c.apply(&format!("{MANIFEST}---{clients}"), &[]);
    for (ns, pod) in
        [("tenant-a", "web"), ("tenant-a", "client"), ("tenant-b", "client"), ("ops", "client")]
    {
        c.ok(&["wait", "-n", ns, "--for=condition=Ready", &format!("pod/{pod}"), "--timeout=120s"]);
    }
    println!("pods ready {:.1} s after start", started.elapsed().as_secs_f64());
    let checks_from = Instant::now();

    let node = c.json(&["get", "nodes"]);
    let pod_cidr = node["items"][0]["spec"]["podCIDR"].as_str().unwrap().to_owned();
    let suffix = pod_cidr.replace(['.', '/'], "_");
    let ours = |l: &str| l.starts_with("table inet ringfence-netpol-") && l.ends_with(&suffix);
    assert!(tables().lines().any(ours), "no policy table for {pod_cidr}: {}", tables());
    let web = pod_ip(&c, "tenant-a", "web");
    let b_client = pod_ip(&c, "tenant-b", "client");
    let svc = c.json(&["get", "service", "-n", "tenant-a", "web"]);
    let svc: Ipv4Addr = svc["spec"]["clusterIP"].as_str().unwrap().parse().unwrap();
    let at = |port: u16| format!("{web}:{port}");
    let outside = format!("{}:80", internet.addr);
    let (a, b, ops) = ("tenant-a", "tenant-b", "ops");

    // No policy: everything is open.
    expect(
        &c,
        "no policies",
        &[(a, at(80), true), (a, at(8080), true), (b, at(80), true), (a, outside.clone(), true)],
    );

    // Default-deny ingress in tenant a, and its own pods allowed on the named port `http`.
    c.apply(
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: tenant-a}
spec: {podSelector: {}, policyTypes: [Ingress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: same-tenant-http, namespace: tenant-a}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{podSelector: {}}], ports: [{port: http}]}]
"#,
        &[],
    );
    let took = expect(
        &c,
        "default deny + same tenant on http",
        &[
            (a, at(80), true),
            (a, at(8080), false),
            (b, at(80), false),
            (b, at(8080), false),
            // Services: the endpoint judges the real client after DNAT.
            (a, format!("{svc}:80"), true),
            (b, format!("{svc}:80"), false),
        ],
    );
    assert!(took < PROPAGATION + Duration::from_secs(1), "{took:?}");
    // The node itself is never shut out (its probes keep the pod ready).
    let from_node = node::http_get(SocketAddr::from((web, 80)), "/ok.html");
    assert!(from_node.as_ref().is_ok_and(|(code, _)| *code == 200), "{from_node:?}");

    // A namespace selector; an ipBlock with an exception and a port range.
    c.apply(
        &format!(
            r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: ops-alt, namespace: tenant-a}}
spec:
  podSelector: {{matchLabels: {{app: web}}}}
  ingress: [{{from: [{{namespaceSelector: {{matchLabels: {{team: ops}}}}}}], ports: [{{port: 8080}}]}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: block-range, namespace: tenant-a}}
spec:
  podSelector: {{matchLabels: {{app: web}}}}
  ingress:
  - from: [{{ipBlock: {{cidr: {pod_cidr}, except: [{b_client}/32]}}}}]
    ports: [{{port: 9000, endPort: 9003}}]
"#
        ),
        &[],
    );
    expect(
        &c,
        "namespace selector, ipBlock with except, endPort",
        &[
            (ops, at(8080), true),
            (ops, at(80), false),
            (b, at(8080), false),
            (a, at(9001), true),
            (ops, at(9002), true),
            (ops, at(9005), false),
            (b, at(9001), false),
        ],
    );

    // Namespace and pod selector combined; labels changing while pods run.
    c.apply(
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: trusted-b, namespace: tenant-a}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {tenant: b}}, podSelector: {matchLabels: {role: trusted}}}]
    ports: [{port: 80}]
"#,
        &[],
    );
    expect(&c, "combined selector, unlabelled pod", &[(b, at(80), false)]);
    let took = time_until_open(&c, b, &at(80), || {
        c.ok(&["label", "pod", "-n", b, "client", "role=trusted"]);
    });
    println!("a pod label opened traffic {:.2} s after the change", took.as_secs_f64());
    assert!(took < PROPAGATION, "{took:?}");
    c.ok(&["label", "namespace", ops, "team=elsewhere", "--overwrite"]);
    expect(&c, "namespace relabelled", &[(ops, at(8080), false), (ops, at(9002), true)]);

    // Egress from tenant a's client: its own tenant only; the Internet is shut.
    c.apply(
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: no-internet, namespace: tenant-a}
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Egress]
  egress: [{to: [{podSelector: {}}]}]
"#,
        &[],
    );
    expect(
        &c,
        "egress within the tenant",
        &[
            (a, outside.clone(), false),
            (a, at(80), true),
            // Judged on the endpoint the Service picked, not the cluster IP.
            (a, format!("{svc}:80"), true),
            (b, outside.clone(), true),
        ],
    );
    let took = time_until_open(&c, a, &outside, || {
        c.ok(&["delete", "networkpolicy", "-n", a, "no-internet"]);
    });
    println!("removing the egress policy restored traffic in {:.2} s", took.as_secs_f64());
    assert!(took < PROPAGATION, "{took:?}");

    // Removing tenant a's ingress policies opens it again.
    let took = time_until_open(&c, b, &at(8080), || {
        c.ok(&["delete", "networkpolicy", "-n", a, "--all"]);
    });
    println!("removing the ingress policies restored traffic in {:.2} s", took.as_secs_f64());
    assert!(took < PROPAGATION, "{took:?}");
    println!("policy checks took {:.1} s", checks_from.elapsed().as_secs_f64());

    // Stopping the agent removes its table.
    drop(c);
    assert!(!tables().lines().any(ours), "the policy table outlived its agent: {}", tables());
    drop(internet);
    println!("NetworkPolicy test took {:.1} s", started.elapsed().as_secs_f64());
}
