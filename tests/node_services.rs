//! Services in the kernel (the node's nftables data path), with real connections: busybox
//! httpd and a small UDP server in Sentry pods behind ClusterIP and NodePort Services, reached
//! from the node itself and from a pod on the same bridge; ClientIP affinity; Services without
//! ready endpoints refused at once; endpoint changes applied within moments. One cluster serves
//! every check, to keep the suite fast.

mod common;
#[path = "../images/tests/common/mod.rs"]
mod image_common;
#[path = "common/node.rs"]
mod node;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Cluster, eventually};
use serde_json::Value;

/// The whole test may take this long before its watchdog fails it (a hung connection or
/// kubectl call must not stall the suite).
const LIMIT: Duration = Duration::from_secs(480);

fn manifest(tools: &Path) -> String {
    format!(
        r#"
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata: {{name: sentry}}
handler: sentry
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: echo}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: echo}}}}
  template:
    metadata: {{labels: {{app: echo}}}}
    spec:
      runtimeClassName: sentry
      terminationGracePeriodSeconds: 1
      volumes: [{{name: tools, hostPath: {{path: {tools}}}}}]
      containers:
      - name: echo
        image: web:v1
        imagePullPolicy: Never
        command: [sh, -c, 'mkdir -p /www; hostname > /www/host.html; /tools/udp_hostname serve 5353 & exec httpd -f -p 80 -h /www']
        volumeMounts: [{{name: tools, mountPath: /tools}}]
        readinessProbe: {{tcpSocket: {{port: 80}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: echo}}
spec:
  type: NodePort
  selector: {{app: echo}}
  ports:
  - {{name: http, port: 80}}
  - {{name: dns, port: 53, targetPort: 5353, protocol: UDP}}
---
apiVersion: v1
kind: Service
metadata: {{name: sticky}}
spec:
  selector: {{app: echo}}
  sessionAffinity: ClientIP
  sessionAffinityConfig: {{clientIP: {{timeoutSeconds: 60}}}}
  ports: [{{port: 80}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: unready, labels: {{app: unready}}}}
spec:
  runtimeClassName: sentry
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: web:v1
    imagePullPolicy: Never
    command: [sleep, "3600"]
    readinessProbe: {{tcpSocket: {{port: 9}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: nobody}}
spec:
  selector: {{app: unready}}
  ports: [{{name: http, port: 80}}, {{name: dns, port: 53, protocol: UDP}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec:
  runtimeClassName: sentry
  terminationGracePeriodSeconds: 1
  volumes: [{{name: tools, hostPath: {{path: {tools}}}}}]
  containers:
  - name: main
    image: web:v1
    imagePullPolicy: Never
    command: [sleep, "3600"]
    volumeMounts: [{{name: tools, mountPath: /tools}}]
"#,
        tools = tools.display()
    )
}

fn cluster_ip(c: &Cluster, svc: &str) -> Ipv4Addr {
    let s = c.json(&["get", "service", svc]);
    s["spec"]["clusterIP"].as_str().expect("a cluster IP").parse().expect("IPv4")
}

/// One HTTP request for /host.html: the answering pod's name.
fn host_via(addr: SocketAddr) -> Result<String, String> {
    match node::http_get(addr, "/host.html")? {
        (200, body) => Ok(body.trim().to_owned()),
        other => Err(format!("{other:?}")),
    }
}

/// One datagram to `addr` from a fresh socket (a fresh flow): the answering pod's name.
fn udp_host(addr: SocketAddr) -> std::io::Result<String> {
    let s = UdpSocket::bind("0.0.0.0:0")?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.connect(addr)?;
    s.send(b"?")?;
    let mut buf = [0u8; 256];
    let n = s.recv(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).trim().to_owned())
}

/// The ready addresses of a Service's EndpointSlices.
fn ready_endpoints(c: &Cluster, svc: &str) -> Vec<String> {
    let label = format!("kubernetes.io/service-name={svc}");
    let list = c.json(&["get", "endpointslices", "-l", &label]);
    let mut out = Vec::new();
    for s in list["items"].as_array().into_iter().flatten() {
        for e in s["endpoints"].as_array().into_iter().flatten() {
            if e["conditions"]["ready"] != Value::Bool(false) {
                out.extend(e["addresses"][0].as_str().map(str::to_owned));
            }
        }
    }
    out
}

fn echo_pods(c: &Cluster) -> BTreeSet<String> {
    let list = c.json(&["get", "pods", "-l", "app=echo"]);
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
        .collect()
}

/// Runs a shell loop in pod `pod`: `n` requests through `cmd`, one answer per line.
fn from_pod(c: &Cluster, pod: &str, n: u32, cmd: &str) -> Vec<String> {
    let script = format!("for i in $(seq {n}); do {cmd} || echo failed; echo; done");
    let out = c.ok(&["exec", pod, "--", "sh", "-c", &script]);
    out.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

fn tables() -> String {
    let out = Command::new("nft").args(["list", "tables"]).output().expect("run nft");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn services_in_nftables_balance_stick_refuse_and_follow_endpoints() {
    let _watchdog = common::watchdog("a Service test", LIMIT);
    let started = Instant::now();
    let work = tempfile::tempdir().unwrap();
    // The node's resolvers, as cluster DNS sees them: one that answers every name.
    let upstream = fake_resolver();
    let resolv_conf = work.path().join("resolv.conf");
    std::fs::write(&resolv_conf, format!("nameserver {upstream}\n")).unwrap();
    let c = Cluster::up(&["--resolv-conf", resolv_conf.to_str().unwrap()]);
    node::import_busybox_image(c.data_dir(), &work.path().join("image"), "web:v1", &[]);
    let tools = work.path().join("tools");
    std::fs::create_dir_all(&tools).unwrap();
    common::sentry::compile("udp_hostname", &tools.join("udp_hostname"), &["-static"]);
    c.apply(&manifest(&tools), &[]);
    c.ok(&["rollout", "status", "deployment/echo", "--timeout=120s"]);
    c.ok(&["wait", "--for=condition=Ready", "pod/client", "--timeout=120s"]);
    let pods = echo_pods(&c);
    assert_eq!(pods.len(), 2, "{pods:?}");
    println!("pods ready {:.1} s after start", started.elapsed().as_secs_f64());

    // The agent's table, named for its pod subnet.
    let node = c.json(&["get", "nodes"]);
    let pod_cidr = node["items"][0]["spec"]["podCIDR"].as_str().unwrap().to_owned();
    let suffix = pod_cidr.replace(['.', '/'], "_");
    let table = tables()
        .lines()
        .find(|l| l.starts_with("table ip ringfence-") && l.ends_with(&suffix))
        .map(|l| l.trim_start_matches("table ip ").to_owned())
        .unwrap_or_else(|| panic!("no table for {pod_cidr}: {}", tables()));
    let gateway: Ipv4Addr = {
        let net: Ipv4Addr = pod_cidr.split('/').next().unwrap().parse().unwrap();
        Ipv4Addr::from(u32::from(net) + 1)
    };

    // ClusterIP, TCP, from the node: both endpoints answer.
    let echo = cluster_ip(&c, "echo");
    let http = SocketAddr::from((echo, 80));
    let mut seen = BTreeSet::new();
    assert!(
        eventually(Duration::from_secs(20), || {
            seen.extend(host_via(http).ok());
            seen == pods
        }),
        "from the node, {http} reached {seen:?} of {pods:?}"
    );

    // From a pod on the same bridge (the reply must come back through the node, not be bridged
    // straight to the client): both endpoints answer every request.
    let wget = format!("wget -qO- http://{echo}/host.html");
    let answers = from_pod(&c, "client", 16, &wget);
    assert!(answers.iter().all(|a| pods.contains(a)), "{answers:?}");
    assert_eq!(answers.iter().cloned().collect::<BTreeSet<_>>(), pods, "{answers:?}");
    // A pod reaching its own Service (possibly itself: hairpin).
    let first = pods.iter().next().unwrap();
    let answers = from_pod(&c, first, 6, &wget);
    assert!(answers.iter().all(|a| pods.contains(a)), "hairpin: {answers:?}");

    // UDP: from the node (a fresh flow each time) and from a pod.
    let dns = SocketAddr::from((echo, 53));
    let mut seen = BTreeSet::new();
    assert!(
        eventually(Duration::from_secs(20), || {
            seen.extend(udp_host(dns).ok());
            seen == pods
        }),
        "UDP from the node reached {seen:?} of {pods:?}"
    );
    let ask = format!("/tools/udp_hostname ask {echo} 53");
    let answers = from_pod(&c, "client", 4, &ask);
    assert!(answers.iter().all(|a| pods.contains(a)), "UDP from a pod: {answers:?}");

    // NodePorts, TCP and UDP, on the node's addresses.
    let svc = c.json(&["get", "service", "echo"]);
    let node_port = |i: usize| svc["spec"]["ports"][i]["nodePort"].as_u64().unwrap() as u16;
    for ip in [Ipv4Addr::LOCALHOST, gateway] {
        let answer = host_via(SocketAddr::from((ip, node_port(0))));
        assert!(answer.as_ref().is_ok_and(|a| pods.contains(a)), "node port on {ip}: {answer:?}");
    }
    let answer = udp_host(SocketAddr::from((gateway, node_port(1))));
    assert!(answer.as_ref().is_ok_and(|a| pods.contains(a)), "UDP node port: {answer:?}");
    let answers = from_pod(
        &c,
        "client",
        4,
        &format!("wget -qO- http://{gateway}:{}/host.html", node_port(0)),
    );
    assert!(answers.iter().all(|a| pods.contains(a)), "node port from a pod: {answers:?}");

    // ClientIP affinity: one client, one endpoint, request after request.
    let sticky = SocketAddr::from((cluster_ip(&c, "sticky"), 80));
    let from_node: BTreeSet<String> = (0..20).map(|_| host_via(sticky).unwrap()).collect();
    assert_eq!(from_node.len(), 1, "the node's requests spread: {from_node:?}");
    let wget_sticky = format!("wget -qO- http://{}/host.html", sticky.ip());
    let from_client: BTreeSet<String> =
        from_pod(&c, "client", 12, &wget_sticky).into_iter().collect();
    assert_eq!(from_client.len(), 1, "the pod's requests spread: {from_client:?}");
    assert!(pods.contains(from_client.iter().next().unwrap()));

    // A Service whose only pod is not ready: refused at once, TCP and UDP, from node and pod;
    // so is a port the echo Service does not have.
    assert!(eventually(Duration::from_secs(10), || {
        let label = "kubernetes.io/service-name=nobody";
        c.ok(&["get", "endpointslices", "-l", label, "-o", "json"]).contains("\"ready\": false")
    }));
    assert!(ready_endpoints(&c, "nobody").is_empty());
    let nobody = cluster_ip(&c, "nobody");
    for addr in [SocketAddr::from((nobody, 80)), SocketAddr::from((echo, 81))] {
        let t = Instant::now();
        let r = TcpStream::connect_timeout(&addr, Duration::from_secs(5));
        let err = r.expect_err("no endpoints, no connection");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{addr}: {err}");
        assert!(t.elapsed() < Duration::from_secs(1), "{addr} took {:?}", t.elapsed());
    }
    // The node's own datagram is rejected in its output path: the send itself fails (EPERM)
    // or the ICMP error comes back; either way at once, not after the read timeout.
    let t = Instant::now();
    let err = udp_host(SocketAddr::from((nobody, 53))).expect_err("no UDP answer");
    use std::io::ErrorKind::{ConnectionRefused, PermissionDenied};
    assert!(matches!(err.kind(), ConnectionRefused | PermissionDenied), "{err}");
    assert!(t.elapsed() < Duration::from_secs(1), "UDP took {:?}", t.elapsed());
    let t = Instant::now();
    let out = from_pod(&c, "client", 1, &format!("wget -qO- http://{nobody}/ 2>&1"));
    assert!(t.elapsed() < Duration::from_secs(8), "a pod waited {:?}: {out:?}", t.elapsed());
    assert!(out.join(" ").contains("refused"), "{out:?}");
    let out = from_pod(&c, "client", 1, &format!("/tools/udp_hostname ask {nobody} 53"));
    assert!(out.contains(&"refused".to_owned()), "{out:?}");

    // Cluster DNS, asked by busybox's nslookup in a pod: the Service's address, SRV records of
    // its named ports, an existing name without IPv6 records, a name that does not exist, and
    // a name outside the cluster answered by the node's resolver.
    let fqdn = "echo.default.svc.cluster.local";
    let look = |args: &str| {
        c.ok(&["exec", "client", "--", "sh", "-c", &format!("nslookup {args} 2>&1; true")])
    };
    let a = look(fqdn);
    assert!(a.contains(&echo.to_string()), "{a}");
    let srv = look(&format!("-type=srv _http._tcp.{fqdn}"));
    assert!(srv.contains(" 80 ") && srv.contains(fqdn), "{srv}");
    let srv = look(&format!("-type=srv _dns._udp.{fqdn}"));
    assert!(srv.contains(" 53 "), "{srv}");
    let aaaa = look(&format!("-type=aaaa {fqdn}"));
    assert!(!aaaa.contains("NXDOMAIN") && !aaaa.contains(&echo.to_string()), "{aaaa}");
    let missing = look("nope.default.svc.cluster.local");
    assert!(missing.contains("NXDOMAIN"), "{missing}");
    let outside = look("outside.example.");
    assert!(outside.contains(FORWARDED), "{outside}");

    // Scaling: a new endpoint takes traffic moments after its slice says it is ready; removed
    // ones stop getting it as quickly.
    c.ok(&["scale", "deployment/echo", "--replicas=3"]);
    assert!(
        eventually(Duration::from_secs(60), || ready_endpoints(&c, "echo").len() == 3),
        "three ready endpoints"
    );
    let ready_at = Instant::now();
    let all = echo_pods(&c);
    let mut seen = BTreeSet::new();
    assert!(
        eventually(Duration::from_secs(10), || {
            seen.extend(host_via(http).ok());
            seen == all
        }),
        "after scaling up, {seen:?} of {all:?}"
    );
    let lag = ready_at.elapsed();
    println!("a new endpoint answered {:.2} s after its slice was ready", lag.as_secs_f64());
    assert!(lag < Duration::from_secs(2), "{lag:?}");
    c.ok(&["scale", "deployment/echo", "--replicas=1"]);
    assert!(eventually(Duration::from_secs(30), || ready_endpoints(&c, "echo").len() == 1));
    let left_at = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    let remaining: BTreeSet<String> = (0..10).filter_map(|_| host_via(http).ok()).collect();
    assert_eq!(remaining.len(), 1, "{remaining:?}, {:?} after the slice shrank", left_at.elapsed());

    // Stopping the agent removes its table.
    drop(c);
    assert!(!tables().contains(&table), "{table} outlived its agent: {}", tables());
    println!("Service test took {:.1} s", started.elapsed().as_secs_f64());
}

/// What [`fake_resolver`] answers for every A question.
const FORWARDED: &str = "192.0.2.77";

/// A resolver on a loopback address of this test's own (port 53, as resolv.conf can say no
/// other): every A question gets [`FORWARDED`], others an empty answer.
fn fake_resolver() -> Ipv4Addr {
    let pid = std::process::id();
    let ip = Ipv4Addr::new(127, 77, (pid >> 8) as u8, pid as u8 | 1);
    let socket = UdpSocket::bind((ip, 53)).expect("bind the fake resolver");
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, peer)) = socket.recv_from(&mut buf) {
            // Header (12 bytes) then one question: name labels, type, class.
            let Some(end) = buf[12..n].iter().position(|&b| b == 0).map(|p| 12 + p + 5) else {
                continue;
            };
            if end > n {
                continue;
            }
            let is_a = buf[end - 4..end - 2] == [0, 1];
            let mut reply = buf[..end].to_vec();
            reply[2] = 0x81; // a response, recursion desired
            reply[3] = 0x80; // recursion available, NOERROR
            reply[6..12].copy_from_slice(&[0, u8::from(is_a), 0, 0, 0, 0]);
            if is_a {
                // The question's name (a pointer to offset 12), A, IN, TTL 5, four bytes.
                reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4]);
                reply.extend_from_slice(&FORWARDED.parse::<Ipv4Addr>().unwrap().octets());
            }
            let _ = socket.send_to(&reply, peer);
        }
    });
    ip
}

/// A node that cannot run `nft` says so and stops rather than running without Services.
#[test]
fn a_node_without_nft_fails_at_start() {
    let _watchdog = common::watchdog("a Service test", Duration::from_secs(120));
    let dir = tempfile::tempdir().unwrap();
    // Everything on the PATH but nft.
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink("/usr/sbin/ip", bin.join("ip")).unwrap();
    let net = common::Net::unique();
    let out = Command::new(env!("CARGO_BIN_EXE_ringfence"))
        .args(["up", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--listen", "127.0.0.1:0", "--node-port", "0", "--bridge", &net.bridge])
        .args(["--pod-cidr", &net.pod_cidr, "--service-cidr", &net.service_cidr])
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .stdin(Stdio::null())
        .output()
        .expect("run ringfence up");
    let _ = Command::new("ip").args(["link", "del", &net.bridge]).output();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "ringfence up ran without nft: {err}");
    assert!(err.contains("need the `nft` program"), "{err}");
    assert!(err.contains("--proxy-mode userspace"), "{err}");
}

/// `--proxy-mode userspace`, kept to compare against, still serves cluster IPs, and leaves
/// nftables alone.
#[test]
fn the_userspace_proxy_still_serves_cluster_ips() {
    let _watchdog = common::watchdog("a Service test", Duration::from_secs(240));
    let c = Cluster::up(&["--proxy-mode", "userspace"]);
    let work = tempfile::tempdir().unwrap();
    node::import_busybox_image(c.data_dir(), &work.path().join("image"), "web:v1", &[]);
    let tools = work.path().join("tools");
    std::fs::create_dir_all(&tools).unwrap();
    common::sentry::compile("udp_hostname", &tools.join("udp_hostname"), &["-static"]);
    c.apply(&manifest(&tools), &[]);
    c.ok(&["rollout", "status", "deployment/echo", "--timeout=120s"]);
    let pods = echo_pods(&c);
    let http = SocketAddr::from((cluster_ip(&c, "echo"), 80));
    let mut seen = BTreeSet::new();
    assert!(
        eventually(Duration::from_secs(20), || {
            seen.extend(host_via(http).ok());
            seen == pods
        }),
        "the user-space proxy reached {seen:?} of {pods:?}"
    );
    let node = c.json(&["get", "nodes"]);
    let pod_cidr = node["items"][0]["spec"]["podCIDR"].as_str().unwrap().replace(['.', '/'], "_");
    // (The NetworkPolicy table, `inet`, is not the proxy's.)
    let services =
        tables().lines().filter(|l| l.starts_with("table ip ")).any(|l| l.contains(&pod_cidr));
    assert!(!services, "{}", tables());
}
