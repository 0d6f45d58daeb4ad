//! `ringfence up` end to end with the real kubectl: busybox httpd pods in Sentry sandboxes behind
//! a Service, healed, probed and rolled out while requests keep flowing.

mod common;
#[path = "../images/tests/common/mod.rs"]
mod image_common;
#[path = "common/node.rs"]
mod node;
#[path = "common/terminal.rs"]
mod terminal;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Cluster, eventually};
use serde_json::Value;

const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  strategy: {rollingUpdate: {maxUnavailable: 0, maxSurge: 1}}
  template:
    metadata: {labels: {app: web}}
    spec:
      runtimeClassName: sentry
      terminationGracePeriodSeconds: 5
      # One PID namespace for the pod, whose init is the sandbox's: an exec can kill httpd.
      # (In a namespace of its own httpd would be its init, which ignores signals from inside
      # its namespace, even SIGKILL, as on Linux.)
      shareProcessNamespace: true
      containers:
      - name: web
        image: web:v1
        imagePullPolicy: Never
        command:
        - /bin/sh
        - -c
        - cat /etc/hostname > /www/host.html; touch /www/healthz /www/ready; echo started $(cat /etc/hostname); exec httpd -f -p 80 -h /www
        ports: [{containerPort: 80, name: http}]
        readinessProbe: {httpGet: {path: /ready, port: http}, periodSeconds: 1, failureThreshold: 1}
        livenessProbe: {httpGet: {path: /healthz, port: 80}, periodSeconds: 1, failureThreshold: 2}
        startupProbe: {tcpSocket: {port: 80}, periodSeconds: 1, failureThreshold: 30}
        lifecycle:
          # Out of the Service's endpoints before httpd stops, as users of Kubernetes do.
          preStop: {sleep: {seconds: 2}}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
"#;

/// The RuntimeClass every test's pods name.
const SENTRY_CLASS: &str =
    "apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata: {name: sentry}\nhandler: sentry\n";

/// Applies `yaml` after the sentry RuntimeClass.
fn apply(c: &Cluster, yaml: &str) {
    c.apply(&format!("{SENTRY_CLASS}---\n{yaml}"), &[]);
}

/// `ringfence up` with the busybox image `web:v1` (plus `files`) imported.
fn cluster_with_image(files: &[(&str, &str)]) -> (Cluster, tempfile::TempDir) {
    let c = Cluster::up(&[]);
    let images = tempfile::tempdir().unwrap();
    node::import_busybox_image(c.data_dir(), images.path(), "web:v1", files);
    (c, images)
}

fn pods(c: &Cluster) -> Vec<Value> {
    let list = c.json(&["get", "pods", "-l", "app=web"]);
    list["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect()
}

fn name(p: &Value) -> String {
    p["metadata"]["name"].as_str().unwrap_or_default().to_owned()
}

fn ready(p: &Value) -> bool {
    p["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

fn restarts(c: &Cluster, pod: &str) -> i64 {
    let p = c.json(&["get", "pod", pod]);
    p["status"]["containerStatuses"][0]["restartCount"].as_i64().unwrap_or(0)
}

fn ready_pod_count(c: &Cluster) -> usize {
    pods(c).iter().filter(|p| ready(p)).count()
}

fn endpoint_ips(c: &Cluster, field: &str) -> Vec<String> {
    let ep = c.json(&["get", "endpoints", "web"]);
    ep["subsets"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s[field].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["ip"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn a_deployment_serves_heals_and_rolls_out_without_failed_requests() {
    let started = Instant::now();
    let c = Cluster::up(&[]);
    let images = tempfile::tempdir().unwrap();
    for v in ["v1", "v2"] {
        node::import_busybox_image(
            c.data_dir(),
            &images.path().join(v),
            &format!("web:{v}"),
            &[("www/version.html", v)],
        );
    }
    apply(&c, WEB);
    c.ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    let up = started.elapsed();
    let names: Vec<String> = pods(&c).iter().map(name).collect();
    assert_eq!(names.len(), 3, "three pods: {names:?}");
    println!("3 sentry pods ready {:.1} s after `ringfence up` started", up.as_secs_f64());

    // The Service reaches every pod, through its cluster IP and its node port.
    let svc = c.json(&["get", "service", "web"]);
    let ip: IpAddr = svc["spec"]["clusterIP"].as_str().unwrap().parse().unwrap();
    let service = SocketAddr::new(ip, 80);
    let node_port = svc["spec"]["ports"][0]["nodePort"].as_u64().expect("a node port") as u16;
    let mut seen = std::collections::BTreeSet::new();
    assert!(
        eventually(Duration::from_secs(30), || {
            if let Ok((200, body)) = node::http_get(service, "/host.html") {
                seen.insert(body.trim().to_owned());
            }
            seen.len() == 3
        }),
        "the service reached only {seen:?} of {names:?}"
    );
    assert_eq!(seen, names.iter().cloned().collect());
    let (code, body) =
        node::http_get(SocketAddr::from(([127, 0, 0, 1], node_port)), "/version.html").unwrap();
    assert_eq!((code, body.as_str()), (200, "v1"));

    // Cluster DNS: pods resolve the Service by name.
    let first = &names[0];
    let resolv = c.ok(&["exec", first, "--", "cat", "/etc/resolv.conf"]);
    assert!(resolv.contains("search default.svc.cluster.local svc.cluster.local"), "{resolv}");
    let lookup = c.ok(&["exec", first, "--", "nslookup", "web.default.svc.cluster.local"]);
    assert!(lookup.contains(&format!("Address: {ip}")), "{lookup}");
    let missing = c.kubectl(&["exec", first, "--", "nslookup", "nope.default.svc.cluster.local"]);
    assert!(String::from_utf8_lossy(&missing.stdout).contains("NXDOMAIN"), "{missing:?}");

    // Logs and exec.
    assert!(c.ok(&["logs", first]).contains(&format!("started {first}")));
    // kubectl logs' selections reach the node: a byte limit, a start time, a window.
    assert_eq!(c.ok(&["logs", first, "--limit-bytes=7"]), "started");
    assert!(c.ok(&["logs", first, "--since=1h"]).contains("started"));
    assert_eq!(c.ok(&["logs", first, "--since-time=2100-01-01T00:00:00Z"]), "");
    assert!(c.ok(&["logs", first, "--timestamps", "--tail=1"]).starts_with("20"));
    let raw = format!("/api/v1/namespaces/default/pods/{first}/log?sinceSeconds=soon");
    let bad = c.kubectl(&["get", "--raw", &raw]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && err.contains("sinceSeconds"), "{err}");
    assert_eq!(c.ok(&["exec", first, "--", "cat", "/etc/hostname"]).trim(), first);

    // Killing the main process restarts the container.
    c.ok(&["exec", first, "--", "killall", "-9", "httpd"]);
    assert!(
        eventually(Duration::from_secs(30), || restarts(&c, first) == 1),
        "{first} was not restarted"
    );
    let p = c.json(&["get", "pod", first]);
    assert_eq!(p["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"], 137);

    // A failing liveness probe restarts the container.
    let second = &names[1];
    c.ok(&["exec", second, "--", "rm", "/www/healthz"]);
    assert!(
        eventually(Duration::from_secs(30), || restarts(&c, second) == 1),
        "{second} was not restarted after its liveness probe failed"
    );
    // (Seen once in CI: the restart visible before its events were listed.)
    let events =
        || c.ok(&["get", "events", "--field-selector", &format!("involvedObject.name={second}")]);
    assert!(
        eventually(Duration::from_secs(10), || events().contains("Liveness probe failed")),
        "{}",
        events()
    );

    // A pod that is not ready leaves the endpoints, and comes back.
    assert!(eventually(Duration::from_secs(30), || ready_pod_count(&c) == 3));
    let third = &names[2];
    let third_ip = c.json(&["get", "pod", third])["status"]["podIP"].as_str().unwrap().to_owned();
    c.ok(&["exec", third, "--", "rm", "/www/ready"]);
    assert!(
        eventually(Duration::from_secs(20), || {
            !endpoint_ips(&c, "addresses").contains(&third_ip)
                && endpoint_ips(&c, "notReadyAddresses").contains(&third_ip)
        }),
        "{third} stayed in the endpoints"
    );
    std::thread::sleep(Duration::from_secs(2));
    for _ in 0..30 {
        let (code, body) = node::http_get(service, "/host.html").unwrap();
        assert_eq!(code, 200);
        assert_ne!(body.trim(), third, "a not-ready pod got traffic");
    }
    c.ok(&["exec", third, "--", "touch", "/www/ready"]);
    assert!(eventually(Duration::from_secs(20), || endpoint_ips(&c, "addresses").len() == 3));

    // A rollout while a request loop runs: every request answered.
    let stop = Arc::new(AtomicBool::new(false));
    let looper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                match node::http_get(service, "/version.html") {
                    Ok((200, _)) => ok += 1,
                    other => failed.push(format!("{other:?}")),
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (ok, failed)
        })
    };
    let rollout = Instant::now();
    c.ok(&["set", "image", "deployment/web", "web=web:v2"]);
    c.ok(&["rollout", "status", "deployment/web", "--timeout=180s"]);
    assert!(eventually(Duration::from_secs(60), || {
        let p = pods(&c);
        p.len() == 3 && p.iter().all(|p| p["spec"]["containers"][0]["image"] == "web:v2")
    }));
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = looper.join().unwrap();
    println!(
        "rollout to v2 took {:.1} s; {ok} requests answered, {} failed",
        rollout.elapsed().as_secs_f64(),
        failed.len()
    );
    assert!(failed.is_empty(), "requests failed during the rollout: {failed:?}");
    assert!(ok > 20, "the request loop barely ran: {ok}");
    for _ in 0..10 {
        assert_eq!(node::http_get(service, "/version.html").unwrap(), (200, "v2".to_owned()));
    }

    // A deleted pod is replaced.
    let victim = name(&pods(&c)[0]);
    c.ok(&["delete", "pod", &victim, "--wait=false"]);
    assert!(
        eventually(Duration::from_secs(60), || {
            let p = pods(&c);
            p.len() == 3 && p.iter().all(ready) && !p.iter().any(|p| name(p) == victim)
        }),
        "{victim} was not replaced"
    );
    println!("node end-to-end test took {:.1} s", started.elapsed().as_secs_f64());
}

const BAD: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {greeting: hello}
---
apiVersion: v1
kind: Pod
metadata: {name: good}
spec:
  runtimeClassName: sentry
  containers:
  - name: main
    image: web:v1
    imagePullPolicy: Never
    command: [sh, -c, 'echo "$(GREETING) from $MY_NAME at $MY_IP"; exec sleep 3600']
    env:
    - {name: GREETING, valueFrom: {configMapKeyRef: {name: settings, key: greeting}}}
    - {name: MY_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: MY_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
---
apiVersion: v1
kind: Pod
metadata: {name: no-config}
spec:
  runtimeClassName: sentry
  containers:
  - name: main
    image: web:v1
    imagePullPolicy: Never
    command: [sleep, "3600"]
    env: [{name: X, valueFrom: {secretKeyRef: {name: missing, key: x}}}]
---
apiVersion: v1
kind: Pod
metadata: {name: no-image}
spec:
  runtimeClassName: sentry
  containers: [{name: main, image: "127.0.0.1:1/nothing/here:1", command: [sleep, "3600"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: no-command}
spec:
  runtimeClassName: sentry
  containers: [{name: main, image: web:v1, imagePullPolicy: Never, command: [/bin/no-such-program]}]
---
apiVersion: v1
kind: Pod
metadata: {name: too-big}
spec:
  runtimeClassName: sentry
  containers:
  - name: main
    image: web:v1
    imagePullPolicy: Never
    command: [sleep, "3600"]
    resources: {requests: {memory: 100Ti}}
---
apiVersion: v1
kind: Pod
metadata: {name: root-refused}
spec:
  runtimeClassName: sentry
  securityContext: {runAsNonRoot: true}
  containers: [{name: main, image: web:v1, imagePullPolicy: Never, command: [sleep, "3600"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: non-root}
spec:
  runtimeClassName: sentry
  securityContext: {runAsNonRoot: true, runAsUser: 1000}
  containers: [{name: main, image: web:v1, imagePullPolicy: Never, command: [sleep, "3600"]}]
"#;

fn waiting_reason(c: &Cluster, pod: &str) -> String {
    let p = c.json(&["get", "pod", pod]);
    p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn events_of(c: &Cluster, pod: &str) -> String {
    c.ok(&["get", "events", "--field-selector", &format!("involvedObject.name={pod}")])
}

#[test]
fn bad_pods_surface_kubernetes_reasons_and_spare_the_others() {
    let (c, _images) = cluster_with_image(&[]);

    // A probe without a handler never gets in.
    let malformed = r#"
apiVersion: v1
kind: Pod
metadata: {name: bad-probe}
spec:
  containers:
  - {name: main, image: web:v1, livenessProbe: {periodSeconds: 1}}
"#;
    let f = c.write("bad-probe.yaml", malformed);
    let err = c.fails(&["apply", "-f", f.to_str().unwrap()]);
    assert!(err.contains("livenessProbe: Required value: must specify a handler type"), "{err}");
    assert!(
        c.kubectl(&["get", "pod", "bad-probe"]).stderr.starts_with(b"Error from server (NotFound)")
    );

    apply(&c, BAD);
    assert!(
        eventually(Duration::from_secs(60), || {
            matches!(waiting_reason(&c, "no-image").as_str(), "ErrImagePull" | "ImagePullBackOff")
        }),
        "no-image: {}",
        waiting_reason(&c, "no-image")
    );
    assert!(events_of(&c, "no-image").contains("Failed to pull image"));
    assert!(
        eventually(Duration::from_secs(60), || {
            matches!(
                waiting_reason(&c, "no-command").as_str(),
                "RunContainerError" | "CreateContainerError"
            )
        }),
        "no-command: {}",
        waiting_reason(&c, "no-command")
    );
    let p = c.json(&["get", "pod", "no-command"]);
    let message = p["status"]["containerStatuses"][0]["state"]["waiting"]["message"].to_string();
    assert!(message.contains("/bin/no-such-program"), "{message}");
    assert!(
        eventually(Duration::from_secs(30), || events_of(&c, "too-big")
            .contains("FailedScheduling")),
        "too-big: no FailedScheduling event"
    );
    let big = c.json(&["get", "pod", "too-big"]);
    assert_eq!(big["status"]["phase"], "Pending");
    assert!(events_of(&c, "too-big").contains("Insufficient memory"));

    // runAsNonRoot: the image's user is root, so only the pod that names a user runs.
    assert!(
        eventually(Duration::from_secs(30), || waiting_reason(&c, "root-refused")
            == "CreateContainerConfigError"),
        "root-refused: {}",
        waiting_reason(&c, "root-refused")
    );
    let p = c.json(&["get", "pod", "root-refused"]);
    let message = p["status"]["containerStatuses"][0]["state"]["waiting"]["message"].to_string();
    assert!(message.contains("image will run as root"), "{message}");
    assert!(eventually(Duration::from_secs(30), || {
        c.json(&["get", "pod", "non-root"])["status"]["phase"] == "Running"
    }));
    assert_eq!(c.ok(&["exec", "non-root", "--", "id", "-u"]).trim(), "1000");
    assert!(
        eventually(Duration::from_secs(30), || waiting_reason(&c, "no-config")
            == "CreateContainerConfigError"),
        "no-config: {}",
        waiting_reason(&c, "no-config")
    );

    // The good pod ran all along, with its environment from the API.
    assert!(eventually(Duration::from_secs(30), || {
        let p = c.json(&["get", "pod", "good"]);
        p["status"]["phase"] == "Running" && ready(&p)
    }));
    let ip = c.json(&["get", "pod", "good"])["status"]["podIP"].as_str().unwrap().to_owned();
    assert!(eventually(Duration::from_secs(10), || {
        c.ok(&["logs", "good"]).trim() == format!("hello from good at {ip}")
    }));
    assert_eq!(restarts(&c, "good"), 0);
    assert_eq!(c.ok(&["exec", "good", "--", "echo", "still here"]).trim(), "still here");

    // Its usage reaches the metrics API, as `kubectl top` shows it.
    let mut top = String::new();
    assert!(
        eventually(Duration::from_secs(40), || {
            let out = c.kubectl(&["top", "pod", "good", "--no-headers"]);
            top = String::from_utf8_lossy(&out.stdout).into_owned();
            out.status.success() && top.starts_with("good")
        }),
        "kubectl top pod: {top}"
    );
    let memory = top.split_whitespace().nth(2).unwrap_or_default();
    let mib: f64 = memory.trim_end_matches("Mi").parse().unwrap_or(0.0);
    assert!(memory.ends_with("Mi") && mib > 0.0, "{top}");
    // And the node's own, as `kubectl top node` shows it (with its share of allocatable).
    let mut top = String::new();
    assert!(
        eventually(Duration::from_secs(40), || {
            let out = c.kubectl(&["top", "node", "--no-headers"]);
            top = String::from_utf8_lossy(&out.stdout).into_owned();
            out.status.success() && !top.trim().is_empty()
        }),
        "kubectl top node: {top}"
    );
    // NAME CPU(cores) CPU% MEMORY(bytes) MEMORY%
    let fields: Vec<&str> = top.split_whitespace().collect();
    assert_eq!(fields.len(), 5, "{top}");
    assert!(fields[1].ends_with('m') && fields[2].ends_with('%'), "{top}");
    let mib: f64 = fields[3].trim_end_matches("Mi").parse().unwrap_or(0.0);
    assert!(fields[3].ends_with("Mi") && mib > 100.0, "{top}");
}

/// A network namespace joined to the host by a veth pair: host side `.1`, namespace side `.2`.
struct Netns {
    name: String,
    host_veth: String,
    host_ip: String,
    ns_ip: String,
}

fn cmd_out(program: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(program).args(args).output().expect("run a command");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ip(args: &[&str]) {
    let out = std::process::Command::new("ip").args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl Netns {
    fn new() -> Netns {
        let id = std::process::id() % 100_000;
        let subnet = 16 + (std::process::id() % 200);
        let n = Netns {
            name: format!("rftn{id}"),
            host_veth: format!("rfth{id}"),
            host_ip: format!("172.31.{subnet}.1"),
            ns_ip: format!("172.31.{subnet}.2"),
        };
        ip(&["netns", "add", &n.name]);
        ip(&[
            "link",
            "add",
            &n.host_veth,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &n.name,
        ]);
        ip(&["addr", "add", &format!("{}/30", n.host_ip), "dev", &n.host_veth]);
        ip(&["link", "set", &n.host_veth, "up"]);
        ip(&["-n", &n.name, "addr", "add", &format!("{}/30", n.ns_ip), "dev", "eth0"]);
        ip(&["-n", &n.name, "link", "set", "eth0", "up"]);
        ip(&["-n", &n.name, "link", "set", "lo", "up"]);
        n
    }

    fn spawn(&self, args: &[&str]) -> std::process::Child {
        std::process::Command::new("ip")
            .args(["netns", "exec", &self.name, env!("CARGO_BIN_EXE_ringfence")])
            .args(args)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start ringfence in the namespace")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip").args(["netns", "del", &self.name]).status();
        let _ = std::process::Command::new("ip").args(["link", "del", &self.host_veth]).output();
    }
}

const SPREAD_SERVICE: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: spread}
spec:
  type: NodePort
  selector: {app: spread}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: dns, port: 53, targetPort: 5353, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata: {name: spread-sticky}
spec:
  selector: {app: spread}
  sessionAffinity: ClientIP
  ports: [{port: 80, targetPort: 8080}]
"#;

const SPREAD: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: spread}
spec:
  replicas: 4
  selector: {matchLabels: {app: spread}}
  template:
    metadata: {labels: {app: spread}}
    spec:
      runtimeClassName: sentry
      terminationGracePeriodSeconds: 1
      tolerations:
      - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 2}
      - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 2}
      volumes: [{name: tools, hostPath: {path: TOOLS}}]
      containers:
      - name: main
        image: web:v1
        imagePullPolicy: Never
        command: [sh, -c, 'mkdir -p /www; cat /etc/hostname > /www/host.html; /tools/udp_hostname serve 5353 & exec httpd -f -p 8080 -h /www']
        volumeMounts: [{name: tools, mountPath: /tools}]
        resources: {requests: {memory: 1Gi}}
"#;

fn running_by_node(c: &Cluster) -> std::collections::BTreeMap<String, usize> {
    let list = c.json(&["get", "pods", "-l", "app=spread"]);
    let mut by_node = std::collections::BTreeMap::new();
    for p in list["items"].as_array().into_iter().flatten() {
        if p["status"]["phase"] == "Running" && p["metadata"]["deletionTimestamp"].is_null() {
            let n = p["spec"]["nodeName"].as_str().unwrap_or_default().to_owned();
            *by_node.entry(n).or_insert(0) += 1;
        }
    }
    by_node
}

#[test]
fn two_nodes_in_two_namespaces_share_the_pods_and_take_over() {
    let ns = Netns::new();
    let listen = format!("{}:0", ns.host_ip);
    // node-b brings no pod range: the control plane gives it one (this one-range cluster CIDR).
    let net = common::Net::unique();
    let c = Cluster::up(&[
        "--cluster-cidr",
        &net.pod_cidr,
        "--listen",
        &listen,
        "--node-name",
        "node-a",
        "--node-address",
        &ns.host_ip,
        "--node-monitor-grace-period",
        "15",
    ]);
    let images = tempfile::tempdir().unwrap();
    node::import_busybox_image(c.data_dir(), &images.path().join("a"), "web:v1", &[]);
    let b_dir = tempfile::tempdir().unwrap();
    node::import_busybox_image(b_dir.path(), &images.path().join("b"), "web:v1", &[]);

    let socket = b_dir.path().join("cri.sock");
    let (socket_s, data_s) = (socket.to_str().unwrap(), b_dir.path().to_str().unwrap());
    let cri =
        ns.spawn(&["cri", "--socket", socket_s, "--data-dir", data_s, "--bridge", &net.bridge]);
    assert!(eventually(Duration::from_secs(10), || socket.exists()), "node-b's CRI socket");
    let kubeconfig = c.kubeconfig.to_str().unwrap().to_owned();
    let logs = b_dir.path().join("logs");
    let b_root = b_dir.path().join("node");
    let agent = ns.spawn(&[
        "node",
        "--name",
        "node-b",
        "--kubeconfig",
        &kubeconfig,
        "--cri-socket",
        socket_s,
        "--address",
        &ns.ns_ip,
        "--port",
        "0",
        "--log-dir",
        logs.to_str().unwrap(),
        "--root-dir",
        b_root.to_str().unwrap(),
    ]);
    assert!(
        eventually(Duration::from_secs(30), || {
            c.ok(&["get", "nodes"]).lines().filter(|l| l.contains(" Ready ")).count() == 2
        }),
        "two ready nodes: {}",
        c.ok(&["get", "nodes"])
    );
    let range_b = c.json(&["get", "node", "node-b"])["spec"]["podCIDR"].clone();
    assert_eq!(range_b, net.pod_cidr.as_str(), "node-b's range from --cluster-cidr");

    let tools = images.path().join("tools");
    std::fs::create_dir_all(&tools).unwrap();
    common::sentry::compile("udp_hostname", &tools.join("udp_hostname"), &["-static"]);
    apply(&c, &SPREAD.replace("TOOLS", tools.to_str().unwrap()));
    assert!(
        eventually(Duration::from_secs(60), || {
            let by_node = running_by_node(&c);
            by_node.values().sum::<usize>() == 4 && by_node.len() == 2
        }),
        "pods did not spread over both nodes: {:?}",
        running_by_node(&c)
    );
    // The API server reaches node-b's agent across the namespaces for exec.
    let on_b = c.json(&["get", "pods", "--field-selector", "spec.nodeName=node-b"]);
    let pod_b = on_b["items"][0]["metadata"]["name"].as_str().unwrap().to_owned();
    assert_eq!(c.ok(&["exec", &pod_b, "--", "cat", "/etc/hostname"]).trim(), pod_b);
    // Pods reach pods on the other node by their IPs: each node routes the other's pod range
    // to it over the link between the namespaces.
    let on_a = c.json(&["get", "pods", "--field-selector", "spec.nodeName=node-a"]);
    let pod_a = on_a["items"][0]["metadata"]["name"].as_str().unwrap().to_owned();
    let ip_of =
        |list: &serde_json::Value| list["items"][0]["status"]["podIP"].as_str().unwrap().to_owned();
    let (ip_a, ip_b) = (ip_of(&on_a), ip_of(&on_b));
    for (from, to, want) in [(&pod_a, &ip_b, &pod_b), (&pod_b, &ip_a, &pod_a)] {
        let url = format!("http://{to}:8080/host.html");
        let mut got = String::new();
        let reached = eventually(Duration::from_secs(15), || {
            let out = c.kubectl(&["exec", from, "--", "timeout", "5", "wget", "-qO-", &url]);
            got = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            got.trim() == want.as_str()
        });
        assert!(reached, "{from} -> {url}: {got}; host routes: {}", cmd_out("ip", &["route"]));
    }

    // A Service whose endpoints are on both nodes: a pod on node-a reaches both nodes' pods
    // through its cluster IP, and its NodePort answers on either node's address.
    apply(&c, SPREAD_SERVICE);
    let svc = c.json(&["get", "service", "spread"]);
    let cluster_ip = svc["spec"]["clusterIP"].as_str().unwrap().to_owned();
    let node_port = svc["spec"]["ports"][0]["nodePort"].as_u64().unwrap() as u16;
    let by_node = |name: &str| -> std::collections::BTreeSet<String> {
        let list = c.json(&[
            "get",
            "pods",
            "-l",
            "app=spread",
            "--field-selector",
            &format!("spec.nodeName={name}"),
        ]);
        list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
            .collect()
    };
    let (on_a_names, on_b_names) = (by_node("node-a"), by_node("node-b"));
    let mut seen = std::collections::BTreeSet::new();
    let script = format!(
        "for i in $(seq 12); do timeout 5 wget -qO- http://{cluster_ip}/host.html; echo; done"
    );
    let both = eventually(Duration::from_secs(30), || {
        let out = c.kubectl(&["exec", &pod_a, "--", "sh", "-c", &script]);
        seen.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(|l| l.trim().to_owned())
                .filter(|l| !l.is_empty()),
        );
        seen.iter().any(|p| on_a_names.contains(p)) && seen.iter().any(|p| on_b_names.contains(p))
    });
    assert!(
        both,
        "through {cluster_ip} from node-a: {seen:?}; on a {on_a_names:?}, on b {on_b_names:?}"
    );
    // From node-a itself too: its connections leave with the link's address, which node-b
    // routes back.
    let addr: std::net::SocketAddr = format!("{cluster_ip}:80").parse().unwrap();
    let mut seen = std::collections::BTreeSet::new();
    let both = eventually(Duration::from_secs(30), || {
        if let Ok((200, body)) = node::http_get(addr, "/host.html") {
            seen.insert(body.trim().to_owned());
        }
        seen.iter().any(|p| on_a_names.contains(p)) && seen.iter().any(|p| on_b_names.contains(p))
    });
    assert!(both, "through {addr} from the node: {seen:?}");
    // The same over UDP: each datagram from a fresh socket is a new flow.
    let mut seen = std::collections::BTreeSet::new();
    let ask = format!("for i in $(seq 12); do /tools/udp_hostname ask {cluster_ip} 53; done");
    let both = eventually(Duration::from_secs(30), || {
        let out = c.kubectl(&["exec", &pod_a, "--", "sh", "-c", &ask]);
        seen.extend(String::from_utf8_lossy(&out.stdout).lines().map(|l| l.trim().to_owned()));
        seen.iter().any(|p| on_a_names.contains(p)) && seen.iter().any(|p| on_b_names.contains(p))
    });
    assert!(both, "UDP through {cluster_ip}:53 from node-a: {seen:?}");
    // ClientIP affinity: one client, one endpoint, whichever node it is on.
    let sticky = c.json(&["get", "service", "spread-sticky"])["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_owned();
    let script =
        format!("for i in $(seq 12); do timeout 5 wget -qO- http://{sticky}/host.html; echo; done");
    let out = c.ok(&["exec", &pod_a, "--", "sh", "-c", &script]);
    let answers: std::collections::BTreeSet<&str> =
        out.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    assert_eq!(answers.len(), 1, "ClientIP affinity spread one client over {answers:?}");
    for address in [&ns.host_ip, &ns.ns_ip] {
        let addr: std::net::SocketAddr = format!("{address}:{node_port}").parse().unwrap();
        let mut last = String::new();
        let answered =
            eventually(Duration::from_secs(20), || match node::http_get(addr, "/host.html") {
                Ok((200, body)) => {
                    on_a_names.contains(body.trim()) || on_b_names.contains(body.trim())
                }
                other => {
                    last = format!("{other:?}");
                    false
                }
            });
        assert!(answered, "NodePort {addr}: {last}");
    }

    // node-b's agent goes away: its pods come back on node-a.
    let stopped = Instant::now();
    let mut agent = agent;
    let _ = agent.kill();
    let _ = agent.wait();
    assert!(
        eventually(Duration::from_secs(90), || running_by_node(&c).get("node-a") == Some(&4)),
        "pods were not recreated on node-a: {:?}",
        running_by_node(&c)
    );
    println!(
        "node-b's pods running again on node-a {:.1} s after its agent stopped",
        stopped.elapsed().as_secs_f64()
    );
    let mut cri = cri;
    common::terminate(&mut cri);
}

#[test]
fn a_restarted_node_brings_its_pods_back_counting_a_restart() {
    let (c, _images) = cluster_with_image(&[]);
    let pod = r#"
apiVersion: v1
kind: Pod
metadata: {name: survivor}
spec:
  runtimeClassName: sentry
  terminationGracePeriodSeconds: 1
  containers: [{name: main, image: web:v1, imagePullPolicy: Never, command: [sleep, "3600"]}]
"#;
    apply(&c, pod);
    let running = |c: &Cluster| c.json(&["get", "pod", "survivor"])["status"]["phase"] == "Running";
    assert!(eventually(Duration::from_secs(30), || running(&c)));
    let c = c.restart();
    assert!(
        eventually(Duration::from_secs(30), || running(&c) && restarts(&c, "survivor") == 1),
        "after the restart: {}",
        c.json(&["get", "pod", "survivor"])["status"]
    );
    let p = c.json(&["get", "pod", "survivor"]);
    assert_eq!(p["status"]["containerStatuses"][0]["lastState"]["terminated"]["reason"], "Unknown");
    assert_eq!(c.ok(&["exec", "survivor", "--", "echo", "back"]).trim(), "back");
}

#[test]
fn pod_volumes_are_shared_between_containers_and_reach_the_host() {
    let (c, _images) = cluster_with_image(&[]);
    let host = tempfile::tempdir().unwrap();
    let (pv_dir, host_dir) = (host.path().join("pv"), host.path().join("hostpath"));
    let manifest = format!(
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {{name: app}}
data: {{greeting: hello from a ConfigMap}}
---
apiVersion: v1
kind: Secret
metadata: {{name: creds}}
stringData: {{password: hunter2}}
---
apiVersion: v1
kind: PersistentVolume
metadata: {{name: disk}}
spec:
  capacity: {{storage: 1Gi}}
  accessModes: [ReadWriteOnce]
  hostPath: {{path: {pv}, type: DirectoryOrCreate}}
  claimRef: {{name: data, namespace: default}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: data}}
spec:
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 1Gi}}}}
  volumeName: disk
---
apiVersion: v1
kind: Pod
metadata: {{name: vols}}
spec:
  runtimeClassName: sentry
  terminationGracePeriodSeconds: 1
  volumes:
  - {{name: shared, emptyDir: {{}}}}
  - {{name: config, configMap: {{name: app}}}}
  - {{name: secret, secret: {{secretName: creds, defaultMode: 0400}}}}
  - {{name: data, persistentVolumeClaim: {{claimName: data}}}}
  - {{name: logs, hostPath: {{path: {hp}, type: DirectoryOrCreate}}}}
  containers:
  - name: writer
    image: web:v1
    imagePullPolicy: Never
    command: [sh, -c, 'cat /etc/app/greeting > /shared/msg; exec sleep 3600']
    volumeMounts:
    - {{name: shared, mountPath: /shared}}
    - {{name: config, mountPath: /etc/app}}
  - name: reader
    image: web:v1
    imagePullPolicy: Never
    command: [sh, -c, 'until [ -e /shared/msg ]; do sleep 0.1; done; cp /shared/msg /data/copy; cat /creds/password > /logs/seen; exec sleep 3600']
    volumeMounts:
    - {{name: shared, mountPath: /shared, readOnly: true}}
    - {{name: data, mountPath: /data}}
    - {{name: secret, mountPath: /creds}}
    - {{name: logs, mountPath: /logs}}
"#,
        pv = pv_dir.display(),
        hp = host_dir.display()
    );
    apply(&c, &manifest);
    assert!(
        eventually(Duration::from_secs(30), || {
            std::fs::read_to_string(pv_dir.join("copy")).is_ok_and(|s| !s.is_empty())
                && std::fs::read_to_string(host_dir.join("seen")).is_ok_and(|s| !s.is_empty())
        }),
        "the reader never wrote: {}",
        c.json(&["get", "pod", "vols"])["status"]
    );
    assert_eq!(std::fs::read_to_string(pv_dir.join("copy")).unwrap(), "hello from a ConfigMap");
    assert_eq!(std::fs::read_to_string(host_dir.join("seen")).unwrap(), "hunter2");
    // Read-only where the pod says so, and for ConfigMaps always.
    let err = c.kubectl(&["exec", "vols", "-c", "reader", "--", "touch", "/shared/x"]);
    assert!(String::from_utf8_lossy(&err.stderr).contains("Read-only file system"), "{err:?}");
    let err = c.kubectl(&["exec", "vols", "-c", "writer", "--", "touch", "/etc/app/x"]);
    assert!(String::from_utf8_lossy(&err.stderr).contains("Read-only file system"), "{err:?}");
    let mode = c.ok(&["exec", "vols", "-c", "reader", "--", "stat", "-c", "%a", "/creds/password"]);
    assert_eq!(mode.trim(), "400");

    // The pod's own volumes go with it; the PersistentVolume's data stays.
    let uid = c.json(&["get", "pod", "vols"])["metadata"]["uid"].as_str().unwrap().to_owned();
    let pod_dir = c.data_dir().join("node/pods").join(&uid);
    assert!(pod_dir.join("volumes/empty-dir/shared/msg").exists());
    c.ok(&["delete", "pod", "vols"]);
    assert!(eventually(Duration::from_secs(20), || !pod_dir.exists()));
    assert!(pv_dir.join("copy").exists());
}

/// Two containers each in their own PID namespace by default (the kubelet's CONTAINER mode);
/// in the pod's one with `shareProcessNamespace: true`; an ephemeral container with a target
/// in the target's. Seen from inside with busybox ps, /proc and kill.
#[test]
fn containers_share_a_pid_namespace_only_when_the_pod_says_so() {
    let (c, _images) = cluster_with_image(&[]);
    let pod = |name: &str, shared: bool| {
        format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  runtimeClassName: sentry
  terminationGracePeriodSeconds: 1
  shareProcessNamespace: {shared}
  containers:
  - {{name: a, image: web:v1, imagePullPolicy: Never, command: [sleep, "1001"]}}
  - {{name: b, image: web:v1, imagePullPolicy: Never, command: [sleep, "1002"]}}
"#
        )
    };
    apply(&c, &format!("{}---{}", pod("apart", false), pod("together", true)));
    for p in ["apart", "together"] {
        assert!(
            eventually(Duration::from_secs(60), || c.json(&["get", "pod", p])["status"]["phase"]
                == "Running"),
            "{p}: {}",
            c.json(&["get", "pod", p])["status"]
        );
    }
    let exec = |pod: &str, container: &str, script: &str| {
        let out = c.kubectl(&["exec", pod, "-c", container, "--", "sh", "-c", script]);
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    let ps = "ps -o pid,args";

    // Apart: each container's first process is its PID 1; the other's are nowhere.
    for (me, own, other) in [("a", "sleep 1001", "sleep 1002"), ("b", "sleep 1002", "sleep 1001")] {
        let out = exec("apart", me, ps);
        let first = out.lines().nth(1).unwrap_or_default();
        assert!(first.trim_start().starts_with("1 ") && first.ends_with(own), "{me}: {out}");
        assert!(!out.contains(other), "{me} sees only its own processes: {out}");
        let cmdlines = exec("apart", me, "cat /proc/[0-9]*/cmdline | tr '\\0' ' '");
        assert!(cmdlines.contains(own) && !cmdlines.contains(other), "{me}: {cmdlines}");
        assert_eq!(exec("apart", me, "echo $PPID"), "0\n", "an exec's parent is outside");
    }
    // a's sleep is PID 1 in both: kill 1 from b reaches b's own init, which ignores it.
    let kill = exec("apart", "b", "kill -9 1; kill -0 2 || echo no-such-process");
    assert!(kill.contains("no-such-process"), "{kill}");
    assert!(exec("apart", "a", ps).contains("sleep 1001"), "a lives on");

    // Together: one namespace, the pod's, with both containers' processes; one can end the
    // other's.
    let out = exec("together", "a", ps);
    assert!(out.contains("sleep 1001") && out.contains("sleep 1002"), "{out}");
    let other: String = out
        .lines()
        .find(|l| l.ends_with("sleep 1002"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_default()
        .to_owned();
    assert!(other.parse::<u32>().is_ok_and(|p| p > 1), "{out}");
    exec("together", "a", &format!("kill {other}"));
    assert!(
        eventually(Duration::from_secs(30), || {
            let s = c.json(&["get", "pod", "together"]);
            s["status"]["containerStatuses"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["name"] == "b" && c["restartCount"].as_i64().unwrap_or(0) > 0)
        }),
        "b was killed from a and restarted: {}",
        c.json(&["get", "pod", "together"])["status"]
    );

    // An ephemeral container with a target joins the target's namespace.
    c.ok(&[
        "debug",
        "apart",
        "--image=web:v1",
        "--image-pull-policy=Never",
        "--target=a",
        "--container=dbg",
        "--",
        "sleep",
        "1003",
    ]);
    let running = || {
        c.json(&["get", "pod", "apart"])["status"]["ephemeralContainerStatuses"][0]["state"]
            ["running"]
            .is_object()
    };
    assert!(
        eventually(Duration::from_secs(60), running),
        "{}",
        c.json(&["get", "pod", "apart"])["status"]
    );
    let out = exec("apart", "dbg", ps);
    let first = out.lines().nth(1).unwrap_or_default();
    assert!(first.ends_with("sleep 1001") && out.contains("sleep 1003"), "{out}");
    assert!(!out.contains("sleep 1002"), "{out}");
}

/// The cgroup of a sandbox whose CPU quota is `quota_us` per 100 ms (v2 or v1 layout).
fn sandbox_cgroup_with_quota(quota_us: u64) -> Option<std::path::PathBuf> {
    let v2 = std::path::Path::new("/sys/fs/cgroup/ringfence");
    let v1 = std::path::Path::new("/sys/fs/cgroup/cpu/ringfence");
    for (root, file, want) in [
        (v2, "cpu.max", format!("{quota_us} 100000")),
        (v1, "cpu.cfs_quota_us", quota_us.to_string()),
    ] {
        for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(e.path().join(file)).unwrap_or_default();
            if text.trim() == want {
                return Some(e.path());
            }
        }
    }
    None
}

fn throttled(cgroup: &std::path::Path) -> u64 {
    let stat = std::fs::read_to_string(cgroup.join("cpu.stat")).unwrap_or_default();
    stat.lines()
        .find_map(|l| l.strip_prefix("nr_throttled "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_cpu_limit_throttles_the_sandbox() {
    let (c, _images) = cluster_with_image(&[]);
    let pod = r#"
apiVersion: v1
kind: Pod
metadata: {name: spinner}
spec:
  runtimeClassName: sentry
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: web:v1
    imagePullPolicy: Never
    command: [sh, -c, 'i=0; while :; do i=$((i+1)); if [ $((i % 2000)) = 0 ]; then echo tick $i; fi; done']
    resources: {limits: {cpu: 123m, memory: 64Mi}}
"#;
    apply(&c, pod);
    assert!(eventually(Duration::from_secs(30), || {
        c.json(&["get", "pod", "spinner"])["status"]["phase"] == "Running"
    }));
    let cgroup = sandbox_cgroup_with_quota(12_300).expect("the sandbox's cgroup with its quota");
    let procs = std::fs::read_to_string(cgroup.join("cgroup.procs")).unwrap();
    assert!(!procs.trim().is_empty(), "the sandbox process is in {}", cgroup.display());
    assert!(
        eventually(Duration::from_secs(10), || throttled(&cgroup) > 3),
        "a busy loop at 123m was never throttled: {}",
        std::fs::read_to_string(cgroup.join("cpu.stat")).unwrap_or_default()
    );

    // Through the CRI: the limit of a one-container sandbox can change, its memory cannot;
    // a rotated log file is replaced on request.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _in_runtime = rt.enter();
    let cri = orchestrator::node::cri_client::Cri::connect(&c.data_dir().join("cri.sock")).unwrap();
    let mut runtime = cri.runtime.clone();
    let list = rt
        .block_on(runtime.list_containers(k8s_cri::v1::ListContainersRequest { filter: None }))
        .unwrap()
        .into_inner();
    let id = list.containers[0].id.clone();
    let update = |cpu_quota: i64, memory_limit_in_bytes: i64| {
        let req = k8s_cri::v1::UpdateContainerResourcesRequest {
            container_id: id.clone(),
            linux: Some(k8s_cri::v1::LinuxContainerResources {
                cpu_quota,
                cpu_period: 100_000,
                memory_limit_in_bytes,
                ..Default::default()
            }),
            ..Default::default()
        };
        rt.block_on(runtime.clone().update_container_resources(req))
    };
    update(50_000, 0).unwrap();
    let quota = ["cpu.max", "cpu.cfs_quota_us"]
        .iter()
        .find_map(|f| std::fs::read_to_string(cgroup.join(f)).ok())
        .unwrap();
    assert!(quota.starts_with("50000"), "{quota}");
    let err = update(0, 1 << 30).unwrap_err();
    assert!(err.message().contains("fixed at boot"), "{err:?}");

    let status = rt
        .block_on(runtime.container_status(k8s_cri::v1::ContainerStatusRequest {
            container_id: id.clone(),
            verbose: false,
        }))
        .unwrap()
        .into_inner();
    let log = std::path::PathBuf::from(status.status.unwrap().log_path);
    let rotated = log.with_extension("rotated");
    std::fs::rename(&log, &rotated).unwrap();
    let req = k8s_cri::v1::ReopenContainerLogRequest { container_id: id.clone() };
    rt.block_on(runtime.reopen_container_log(req)).unwrap();
    assert!(
        eventually(Duration::from_secs(20), || {
            std::fs::read_to_string(&log).is_ok_and(|t| t.contains(" stdout F tick "))
        }),
        "nothing reached the reopened log {}",
        log.display()
    );
    drop(cri);

    c.ok(&["delete", "pod", "spinner"]);
    assert!(eventually(Duration::from_secs(20), || !cgroup.exists()), "the cgroup stays");
}

#[test]
fn port_forward_reaches_the_pods_loopback_and_reports_refusals() {
    let (c, _images) = cluster_with_image(&[("www/index.html", "pf")]);
    let pod = r#"
apiVersion: v1
kind: Pod
metadata: {name: local}
spec:
  runtimeClassName: sentry
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: web:v1
    imagePullPolicy: Never
    # Only on the pod's own loopback: no Service or pod IP reaches it.
    command: [httpd, -f, -p, '127.0.0.1:8080', -h, /www]
"#;
    apply(&c, pod);
    // Serving (seen from inside the pod) before forwarding to it.
    assert!(eventually(Duration::from_secs(30), || {
        let probe = ["exec", "local", "--", "wget", "-qO-", "http://127.0.0.1:8080/index.html"];
        c.kubectl(&probe).status.success()
    }));
    let forward = |port: &str| {
        let mut child = c
            .kubectl_cmd()
            .args(["port-forward", "pod/local", &format!(":{port}")])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl port-forward");
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        // kubectl keeps reporting on stdout; keep reading it.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let local: SocketAddr = line
            .split_whitespace()
            .find(|w| w.starts_with("127.0.0.1:"))
            .unwrap_or_else(|| panic!("no local address in {line:?}"))
            .parse()
            .unwrap();
        (child, local)
    };
    let (mut child, local) = forward("8080");
    for _ in 0..3 {
        let got = node::http_get(local, "/index.html");
        if got != Ok((200, "pf".to_owned())) {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("{got:?}; kubectl said {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    let _ = child.kill();
    let _ = child.wait();

    // Nothing listens on 9999: kubectl says so (and gives up, as it does with Kubernetes).
    let (child, local) = forward("9999");
    assert!(node::http_get(local, "/").is_err());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("error forwarding port 9999"), "{stderr}");
}

#[test]
fn attach_streams_a_containers_output_and_feeds_its_stdin() {
    let (c, _images) = cluster_with_image(&[]);
    let pods = r#"
apiVersion: v1
kind: Pod
metadata: {name: ticker}
spec:
  runtimeClassName: sentry
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: web:v1
    imagePullPolicy: Never
    command: [sh, -c, 'i=0; while :; do i=$((i+1)); echo "tick $i"; echo "tock $i" >&2; sleep 0.2; done']
---
apiVersion: v1
kind: Pod
metadata: {name: reader}
spec:
  runtimeClassName: sentry
  restartPolicy: Never
  containers:
  - name: main
    image: web:v1
    imagePullPolicy: Never
    stdin: true
    stdinOnce: true
    command: [sh, -c, 'read line; echo "got $line"']
"#;
    apply(&c, pods);
    for p in ["ticker", "reader"] {
        assert!(eventually(Duration::from_secs(30), || {
            c.json(&["get", "pod", p])["status"]["phase"] == "Running"
        }));
    }
    // Output as it happens, stdout and stderr, from the running main process.
    let mut child = c
        .kubectl_cmd()
        .args(["attach", "ticker"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(stdout.lines().filter(|l| l.starts_with("tick ")).count() >= 3, "{stdout}");
    assert!(stderr.contains("tock "), "{stderr}");

    // Input reaches the process; when it exits, kubectl attach returns.
    let out = common::sentry::run_with_input(
        {
            let mut cmd = c.kubectl_cmd();
            cmd.args(["attach", "-i", "reader"]);
            cmd
        },
        b"hello sandbox\n",
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("got hello sandbox"), "{out:?}");
    assert!(eventually(Duration::from_secs(20), || {
        c.json(&["get", "pod", "reader"])["status"]["phase"] == "Succeeded"
    }));
}

#[test]
fn exec_and_run_with_a_tty_are_interactive_terminals() {
    let (c, _images) = cluster_with_image(&[]);
    run_pod(&c, "shell", r#"[sh, -c, 'while :; do sleep 1; done']"#);
    let limit = Duration::from_secs(20);
    // kubectl at a 33x101 terminal: the command in the pod starts on a terminal of that size.
    let mut cmd = c.kubectl_cmd();
    cmd.args(["exec", "-it", "shell", "--", "sh", "-c", "tty; stty size"]);
    let mut t = terminal::Terminal::spawn(cmd, 33, 101);
    let status = t.wait(limit).unwrap_or_else(|| panic!("kubectl stayed:\n{}", t.screen()));
    assert!(status.success(), "{}", t.screen());
    let at = t.expect(0, "/dev/pts/", limit);
    t.expect(at, "33 101", limit);

    // An interactive shell there.
    let mut cmd = c.kubectl_cmd();
    cmd.args(["exec", "-it", "shell", "--", "sh"]);
    let mut t = terminal::Terminal::spawn(cmd, 33, 101);
    t.type_keys("tty; stty size\r");
    let at = t.expect(0, "/dev/pts/", limit);
    let at = t.expect(at, "33 101", limit);
    // The window grows: kubectl sends the new size, which the shell sees.
    t.resize(40, 120);
    std::thread::sleep(Duration::from_millis(500));
    t.type_keys("stty size\r");
    let at = t.expect(at, "40 120", limit);
    // Typed lines are echoed and run on Enter; exit ends kubectl with the shell's status.
    t.type_keys("echo $((6 * 7))\r");
    let at = t.expect(at, "echo $((6 * 7))", limit);
    let at = t.expect(at, "42", limit);
    // ^C reaches the foreground job through the line discipline, not the shell.
    t.type_keys("sleep 30\r");
    std::thread::sleep(Duration::from_millis(500));
    t.type_keys("\x03");
    t.type_keys("echo status $?\r");
    t.expect(at, "status 130", limit);
    t.type_keys("exit 3\r");
    let status = t.wait(limit).unwrap_or_else(|| panic!("kubectl stayed:\n{}", t.screen()));
    assert_eq!(status.code(), Some(3), "{}", t.screen());

    // `kubectl run -it`: a new pod whose container has a terminal, attached to at once.
    let overrides = r#"{"apiVersion":"v1","spec":{"runtimeClassName":"sentry"}}"#;
    let mut cmd = c.kubectl_cmd();
    cmd.args(["run", "term", "-it", "--rm", "--restart=Never", "--image=web:v1"]);
    cmd.args(["--image-pull-policy=Never", "--overrides", overrides, "--", "sh"]);
    let mut t = terminal::Terminal::spawn(cmd, 30, 90);
    // The shell may have prompted before kubectl attached: type until it answers.
    let answered = eventually(Duration::from_secs(60), || {
        t.type_keys("tty; stty size\r");
        std::thread::sleep(Duration::from_millis(500));
        t.screen().contains("/dev/pts/")
    });
    assert!(answered, "no answer from kubectl run -it:\n{}", t.screen());
    t.expect(0, "30 90", limit);
    t.type_keys("exit\r");
    let status = t.wait(Duration::from_secs(60)).unwrap_or_else(|| panic!("{}", t.screen()));
    assert!(status.success(), "{}", t.screen());
}

/// Runs `cmd` to its end, killed (and the test failed) if it takes longer than `limit`.
fn run_limited(mut cmd: std::process::Command, limit: Duration) -> std::process::Output {
    use std::process::Stdio;
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
    let child = child.unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    let pid = child.id() as i32;
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        let fired = done_rx.recv_timeout(limit).is_err();
        if fired {
            // SAFETY: signalling our own child, which has not been reaped (we hold its wait).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        fired
    });
    let out = child.wait_with_output().unwrap();
    let _ = done_tx.send(());
    assert!(!watchdog.join().unwrap_or(false), "{cmd:?} ran longer than {limit:?} and was killed");
    out
}

/// The node's log/exec port: TLS with a certificate the control plane issued through a
/// CertificateSigningRequest, open to the API server's client certificate only. kubectl
/// logs and exec pass through it; curl without a certificate, over plain HTTP or with the
/// admin's certificate (from the same CA) gets nothing.
#[test]
fn the_node_port_answers_only_the_api_server() {
    let (c, _images) = cluster_with_image(&[]);
    let limit = Duration::from_secs(30);
    let pod = r#"
apiVersion: v1
kind: Pod
metadata: {name: door}
spec:
  runtimeClassName: sentry
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: web:v1
    imagePullPolicy: Never
    command: [sh, -c, 'echo secret-log-line; while :; do sleep 1; done']
"#;
    apply(&c, pod);
    let kubectl = |args: &[&str]| {
        let mut cmd = c.kubectl_cmd();
        cmd.args(args);
        run_limited(cmd, limit)
    };
    assert!(
        eventually(Duration::from_secs(60), || {
            String::from_utf8_lossy(&kubectl(&["logs", "door"]).stdout).contains("secret-log-line")
        }),
        "kubectl logs never showed the pod's output"
    );
    let exec = kubectl(&["exec", "door", "--", "echo", "through-the-door"]);
    assert_eq!(String::from_utf8_lossy(&exec.stdout), "through-the-door\n", "{exec:?}");

    // The node's certificate came through the certificates API: approved and issued.
    let csrs = c.json(&["get", "csr"]);
    let serving = csrs["items"].as_array().into_iter().flatten().find(|r| {
        r["spec"]["signerName"] == "kubernetes.io/kubelet-serving"
            && r["status"]["certificate"].as_str().is_some_and(|s| !s.is_empty())
    });
    let serving = serving.unwrap_or_else(|| panic!("no issued serving certificate: {csrs:#}"));
    assert!(serving["status"]["conditions"][0]["type"] == "Approved", "{serving:#}");

    let node = &c.json(&["get", "nodes"])["items"][0];
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"].as_u64().unwrap();
    let logs_url = format!("https://127.0.0.1:{port}/containerLogs/default/door/main");
    let pki = c.data_dir().join("pki");
    let curl = |extra: &[&str], url: &str| {
        let mut cmd = std::process::Command::new("curl");
        cmd.args(["-s", "--max-time", "10", "-w", "\n%{http_code}"]).args(extra).arg(url);
        let out = run_limited(cmd, limit);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(!stdout.contains("secret-log-line"), "{extra:?} read the logs: {stdout}");
        (out.status.code(), stdout)
    };
    // No client certificate: refused at the handshake (curl's "receive error").
    let (code, out) = curl(&["-k"], &logs_url);
    assert_ne!(code, Some(0), "curl -k got an answer: {out}");
    // Plain HTTP: no answer either.
    let (code, out) = curl(&[], &logs_url.replace("https://", "http://"));
    assert!(code != Some(0) || !out.ends_with("200"), "plain HTTP got an answer: {out}");
    // The admin's certificate is the CA's but not the API server's: 403. The node's own
    // certificate verifies against the cluster CA for its address.
    let ca = pki.join("ca.crt");
    let (admin_crt, admin_key) = (pki.join("admin.crt"), pki.join("admin.key"));
    let as_admin = ["--cacert", path(&ca), "--cert", path(&admin_crt), "--key", path(&admin_key)];
    let (code, out) = curl(&as_admin, &logs_url);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.ends_with("403") && out.contains("user=kubernetes-admin"), "{out}");
    let exec_url =
        format!("https://127.0.0.1:{port}/exec/default/door/main?command=id&stdout=true");
    let (_, out) = curl(&[&as_admin[..], &["-X", "POST"]].concat(), &exec_url);
    assert!(out.ends_with("403"), "{out}");

    // kubectl still reads the logs afterwards.
    assert!(
        String::from_utf8_lossy(&kubectl(&["logs", "door"]).stdout).contains("secret-log-line")
    );
}

/// A certificate request that does not parse is refused with the reason; one an admin makes
/// for a node that does not exist waits for a person, and `kubectl certificate approve` has
/// it issued.
#[test]
fn certificate_requests_are_checked_and_approved_by_people() {
    let c = common::Cluster::new(common::Backend::Embedded);
    let csr = |name: &str, request_pem: &str| {
        use base64::Engine;
        let request = base64::engine::general_purpose::STANDARD.encode(request_pem);
        format!(
            "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata: {{name: {name}}}\n\
             spec: {{signerName: kubernetes.io/kubelet-serving, usages: [digital signature, server auth], request: {request}}}\n"
        )
    };
    let bad = c.write(
        "bad.yaml",
        &csr("bad", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
    );
    let err = c.fails(&["create", "-f", bad.to_str().unwrap()]);
    assert!(err.contains("spec.request") && err.contains("CERTIFICATE REQUEST"), "{err}");
    let garbage = c.write(
        "garbage.yaml",
        &csr(
            "garbage",
            "-----BEGIN CERTIFICATE REQUEST-----\nnot base64\n-----END CERTIFICATE REQUEST-----\n",
        ),
    );
    let err = c.fails(&["create", "-f", garbage.to_str().unwrap()]);
    assert!(err.contains("spec.request"), "{err}");

    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["10.9.9.9".to_owned()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, "system:node:ghost");
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "system:nodes");
    let pem = params.serialize_request(&key).unwrap().pem().unwrap();
    let ghost = c.write("ghost.yaml", &csr("ghost", &pem));
    c.ok(&["create", "-f", ghost.to_str().unwrap()]);
    let got = c.json(&["get", "csr", "ghost"]);
    assert_eq!(got["spec"]["username"], "kubernetes-admin", "the requester is stamped in");
    std::thread::sleep(Duration::from_secs(3));
    let got = c.json(&["get", "csr", "ghost"]);
    assert!(got["status"]["conditions"].is_null(), "no node ghost: left to a person: {got:#}");
    c.ok(&["certificate", "approve", "ghost"]);
    assert!(eventually(Duration::from_secs(20), || {
        let got = c.json(&["get", "csr", "ghost"]);
        got["status"]["certificate"].as_str().is_some_and(|s| !s.is_empty())
    }));
    let listed = c.ok(&["get", "csr", "ghost"]);
    assert!(listed.contains("kubernetes-admin") && listed.contains("Approved,Issued"), "{listed}");
}

/// Starts a one-container Sentry pod `name` running `command` (a YAML list) and waits until
/// it runs.
fn run_pod(c: &Cluster, name: &str, command: &str) {
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  runtimeClassName: sentry\n  \
         terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: web:v1\n    \
         imagePullPolicy: Never\n    command: {command}\n"
    );
    apply(c, &pod);
    let running = eventually(Duration::from_secs(30), || {
        c.json(&["get", "pod", name])["status"]["phase"] == "Running"
    });
    assert!(running, "pod {name} is not running: {}", c.ok(&["describe", "pod", name]));
}

fn path(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

/// kubectl as clients up to 1.29 (and later ones with WebSockets off) speak: exec and attach
/// over SPDY/3.1, with stdin, separate stdout and stderr, the exit code, a terminal's size.
#[test]
fn exec_and_attach_over_spdy_as_older_clients_speak() {
    use std::io::{Read, Write};
    let (c, _images) = cluster_with_image(&[]);
    run_pod(
        &c,
        "talker",
        r#"[sh, -c, 'i=0; while :; do i=$((i+1)); echo tick $i; sleep 1; done']"#,
    );
    let limit = Duration::from_secs(30);
    let spdy = |args: &[&str]| {
        let mut cmd = c.kubectl_cmd();
        cmd.env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false").args(args);
        cmd
    };
    // The upgrade kubectl asks for (its request headers at -v=7): SPDY, not WebSocket.
    let out = run_limited(spdy(&["exec", "-v=7", "talker", "--", "true"]), limit);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let offered = log.contains("X-Stream-Protocol-Version: v4.channel.k8s.io");
    assert!(offered && !log.to_lowercase().contains("websocket"), "{log}");

    // Separate stdout and stderr, and the command's exit code.
    let out = run_limited(
        spdy(&["exec", "talker", "--", "sh", "-c", "echo out; echo err >&2; exit 4"]),
        limit,
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("err\n"), "{out:?}");
    assert_eq!(out.status.code(), Some(4), "{out:?}");

    // Standard input, to its end.
    let mut child = spdy(&["exec", "-i", "talker", "--", "tr", "a-z", "A-Z"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hello spdy\n").unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("kubectl exec -i over SPDY did not end");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success());
    assert_eq!(reader.join().unwrap(), "HELLO SPDY\n");

    // A terminal of the client's size, resized as its window changes.
    let mut t = terminal::Terminal::spawn(spdy(&["exec", "-it", "talker", "--", "sh"]), 33, 101);
    t.type_keys("stty size\r");
    let at = t.expect(0, "33 101", limit);
    t.resize(40, 120);
    std::thread::sleep(Duration::from_millis(500));
    t.type_keys("stty size\r");
    t.expect(at, "40 120", limit);
    t.type_keys("exit 2\r");
    let status = t.wait(limit).unwrap_or_else(|| panic!("kubectl stayed:\n{}", t.screen()));
    assert_eq!(status.code(), Some(2), "{}", t.screen());

    // Attach: the running container's output as it comes.
    let mut child = spdy(&["attach", "talker"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        let mut seen = String::new();
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            if seen.matches("tick").count() >= 2 {
                let _ = tx.send(seen.clone());
                return;
            }
        }
        let _ = tx.send(seen);
    });
    let seen = rx.recv_timeout(limit).unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen.matches("tick").count() >= 2, "attach over SPDY showed {seen:?}");
}

/// `kubectl debug --target`: an ephemeral container joins a running pod, runs once beside its
/// containers (seeing their processes) and keeps its logs and status; the pod's own
/// containers and readiness are untouched. Changing or removing one is refused.
#[test]
fn kubectl_debug_adds_an_ephemeral_container() {
    let (c, _images) = cluster_with_image(&[]);
    let pod = r#"
apiVersion: v1
kind: Pod
metadata: {name: app}
spec:
  runtimeClassName: sentry
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: web:v1
    imagePullPolicy: Never
    command: [sleep, '3600']
"#;
    apply(&c, pod);
    assert!(eventually(Duration::from_secs(30), || ready(&c.json(&["get", "pod", "app"]))));
    let out = c.ok(&[
        "debug",
        "app",
        "--image=web:v1",
        "--image-pull-policy=Never",
        "--target=main",
        "--container=dbg",
        "--",
        "sh",
        "-c",
        "echo from-debug; ps",
    ]);
    assert!(!out.contains("error"), "{out}");
    let finished = eventually(Duration::from_secs(30), || {
        let p = c.json(&["get", "pod", "app"]);
        p["status"]["ephemeralContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    });
    let p = c.json(&["get", "pod", "app"]);
    assert!(finished, "{}", p["status"]);
    let logs = c.ok(&["logs", "app", "-c", "dbg"]);
    assert!(logs.contains("from-debug") && logs.contains("sleep 3600"), "{logs}");
    assert!(ready(&p), "the pod's own container is untouched: {}", p["status"]);
    assert_eq!(p["status"]["containerStatuses"][0]["restartCount"], 0);

    // The list only grows, with well-formed entries.
    let patch = |body: &str| {
        c.kubectl(&[
            "patch",
            "pod",
            "app",
            "--subresource=ephemeralcontainers",
            "--type=json",
            "-p",
            body,
        ])
    };
    let removed = patch(r#"[{"op": "remove", "path": "/spec/ephemeralContainers/0"}]"#);
    assert!(
        String::from_utf8_lossy(&removed.stderr).contains("may not be removed or changed"),
        "{removed:?}"
    );
    let with_ports = patch(
        r#"[{"op": "add", "path": "/spec/ephemeralContainers/-", "value": {"name": "x", "image": "web:v1", "ports": [{"containerPort": 80}]}}]"#,
    );
    assert!(
        String::from_utf8_lossy(&with_ports.stderr)
            .contains("cannot be set for an Ephemeral Container"),
        "{with_ports:?}"
    );
    let list = c.json(&["get", "pod", "app"])["spec"]["ephemeralContainers"].clone();
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
}
