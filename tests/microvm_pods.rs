//! Pods in Linux microVMs (`runtimeClassName: microvm`) end to end with the real kubectl,
//! next to the same workload in Sentry sandboxes in the same run: a Deployment of two busybox
//! httpd pods behind a Service, NetworkPolicies, probes, logs, exec, port-forward, a configMap
//! volume and an emptyDir shared by two containers, a restart, and a clean deletion. The microVM node runs
//! inside the nested-SVM lane (this host's own KVM boots Linux guests in minutes); the Sentry
//! pods run on the host's node. Prints its timings.

mod common;
#[path = "common/guest_lane.rs"]
mod guest_lane;
#[path = "../images/tests/common/mod.rs"]
mod image_common;
#[path = "common/lane_node.rs"]
mod lane_node;
#[path = "common/node.rs"]
mod node;
#[path = "common/terminal.rs"]
mod terminal;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{Cluster, eventually};
use lane_node::LaneNode;
use serde_json::Value;

const MICROVM_CLASS: &str = "apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata: {name: microvm}\nhandler: microvm\noverhead: {podFixed: {memory: 80Mi, cpu: 100m}}\n";

/// The workload, for runtime class `CLASS`.
const WEB: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: web-config}
data: {message: "configured by a ConfigMap"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      runtimeClassName: CLASS
      terminationGracePeriodSeconds: 5
      # One PID namespace for the pod: httpd is then no namespace's init, which would ignore
      # the test's killall (as under runc).
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
        resources: {limits: {memory: 96Mi}}
        readinessProbe: {httpGet: {path: /ready, port: http}, periodSeconds: 1, failureThreshold: 1}
        livenessProbe: {httpGet: {path: /healthz, port: 80}, periodSeconds: 2, failureThreshold: 2}
        volumeMounts:
        - {name: config, mountPath: /config, readOnly: true}
        - {name: shared, mountPath: /shared}
      - name: sidecar
        image: web:v1
        imagePullPolicy: Never
        command: [/bin/sh, -c, "echo written by the sidecar of $(cat /etc/hostname) > /shared/note; exec sleep 100000"]
        volumeMounts:
        - {name: shared, mountPath: /shared}
      volumes:
      - {name: config, configMap: {name: web-config}}
      - {name: shared, emptyDir: {}}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
"#;

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
    p["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["name"] == "web")
        .filter_map(|s| s["restartCount"].as_i64())
        .sum()
}

/// What the cluster shows about the workload, for a failure's message.
fn dump(c: &Cluster) -> String {
    let describe = c.kubectl(&["describe", "pods", "-l", "app=web"]);
    let events = c.kubectl(&["get", "events", "--sort-by=.lastTimestamp"]);
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&describe.stdout),
        String::from_utf8_lossy(&events.stdout)
    )
}

/// Waits up to `limit` for both pods of the Deployment to be Ready on `node`.
fn wait_ready(c: &Cluster, node: &str, limit: Duration) -> Vec<String> {
    let ok = eventually(limit, || {
        let p = pods(c);
        p.len() == 2 && p.iter().all(|p| ready(p) && p["spec"]["nodeName"] == node)
    });
    assert!(ok, "the pods did not become Ready on {node}:\n{}", dump(c));
    pods(c).iter().map(name).collect()
}

/// Runs the whole scenario for `class` on `node`; returns the seconds from apply to Ready.
fn scenario(c: &Cluster, class: &str, node: &str, lane: Option<&LaneNode>) -> f64 {
    let started = Instant::now();
    c.apply(&WEB.replace("CLASS", class), &[]);
    let names = wait_ready(c, node, Duration::from_secs(300));
    let to_ready = started.elapsed().as_secs_f64();
    let first = names[0].clone();

    // Through the Service (cluster DNS, the node's Service proxy) both pods answer.
    // (Debian's busybox-static wget crashes with -T: `timeout` bounds it instead.)
    let service = "http://web.default.svc.cluster.local/host.html";
    let (mut seen, mut errors) = (BTreeSet::new(), BTreeSet::new());
    for _ in 0..30 {
        let get = ["exec", &first, "-c", "web", "--", "timeout", "10", "wget", "-qO-", service];
        let out = c.kubectl(&get);
        seen.insert(String::from_utf8_lossy(&out.stdout).trim().to_owned());
        errors.insert(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        if names.iter().all(|n| seen.contains(n)) {
            break;
        }
    }
    assert!(
        names.iter().all(|n| seen.contains(n)),
        "{class}: the Service reached {seen:?} of {names:?}; errors {errors:?}"
    );

    policies_hold(c, class, &names);

    // exec passes the exit status through; logs carry the container's output.
    let out = c.kubectl(&["exec", &first, "-c", "web", "--", "sh", "-c", "echo out; exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{class}: {out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    let logs = c.ok(&["logs", &first, "-c", "web"]);
    assert!(logs.contains(&format!("started {first}")), "{class}: {logs}");
    // exec -it: the command runs on a terminal of the pod sized like kubectl's own.
    let mut cmd = c.kubectl_cmd();
    cmd.args(["exec", "-it", &first, "-c", "web", "--", "sh", "-c", "tty; stty size"]);
    let mut t = terminal::Terminal::spawn(cmd, 33, 101);
    let status = t.wait(Duration::from_secs(60));
    let screen = t.screen();
    assert!(status.is_some_and(|s| s.success()), "{class}: {status:?} {screen}");
    assert!(screen.contains("/dev/pts/") && screen.contains("33 101"), "{class}: {screen}");

    // The configMap volume (read-only) and the emptyDir the sidecar wrote.
    let config = c.ok(&["exec", &first, "-c", "web", "--", "cat", "/config/message"]);
    assert_eq!(config, "configured by a ConfigMap", "{class}");
    let refused = c.kubectl(&["exec", &first, "-c", "web", "--", "sh", "-c", "echo x > /config/x"]);
    assert!(!refused.status.success(), "{class}: a configMap volume is read-only");
    let note = c.ok(&["exec", &first, "-c", "web", "--", "cat", "/shared/note"]);
    assert_eq!(note.trim(), format!("written by the sidecar of {first}"), "{class}");

    // Port forwarding to the pod's loopback.
    let mut pf = c
        .kubectl_cmd()
        .args(["port-forward", &format!("pod/{first}"), ":80"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl port-forward");
    let mut forwarding = std::io::BufReader::new(pf.stdout.take().expect("stdout"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut forwarding, &mut line).expect("the forwarding line");
    // kubectl reports each connection on stdout: it must stay open (and drained).
    std::thread::spawn(move || std::io::copy(&mut forwarding, &mut std::io::sink()));
    let port: u16 = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("127.0.0.1:"))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{class}: no local port in {line:?}"));
    let got = node::http_get(([127, 0, 0, 1], port).into(), "/host.html");
    let _ = pf.kill();
    let _ = pf.wait();
    assert_eq!(got.map(|(s, b)| (s, b.trim().to_owned())), Ok((200, first.clone())), "{class}");

    // Killing the workload restarts it; the pod is Ready again.
    let _ = c.kubectl(&["exec", &first, "-c", "web", "--", "killall", "httpd"]);
    let back = eventually(Duration::from_secs(90), || {
        restarts(c, &first) >= 1 && pods(c).iter().any(|p| name(p) == first && ready(p))
    });
    assert!(back, "{class}: {first} was not restarted and Ready again:\n{}", dump(c));

    // A failing liveness probe restarts it too.
    let before = restarts(c, &first);
    let _ = c.kubectl(&["exec", &first, "-c", "web", "--", "rm", "/www/healthz"]);
    let probed = eventually(Duration::from_secs(90), || {
        restarts(c, &first) > before && pods(c).iter().any(|p| name(p) == first && ready(p))
    });
    assert!(probed, "{class}: the liveness probe did not restart {first}:\n{}", dump(c));

    if let Some(lane) = lane {
        // Every container of both pods reads the same image: one copy on the node.
        let shared = eventually(Duration::from_secs(30), || {
            let l = lane.leftovers();
            let count = |k: &str| l.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
            count("image-binds") == Some(4) && count("image-sources") == Some(1)
        });
        assert!(shared, "{class}: {}", lane.report());
        // One VMM, daemon, namespace and tap per pod (what must all be gone at the end).
        for what in ["vmm", "virtiofsd", "netns", "tap"] {
            assert_eq!(lane.leftover(what), 2, "{what} per pod: {}", lane.report());
        }

        // The node built a snapshot template of this guest in the background meanwhile.
        let templated = eventually(Duration::from_secs(120), || lane.leftover("templates") == 1);
        assert!(templated, "{class}: no template: {}", lane.report());

        // A VMM killed (SIGKILL): its pod's containers end, a new sandbox starts (a clone of
        // the template, with the pod's own identity), and the containers restart in it under
        // the pod's restartPolicy.
        let before: i64 = names.iter().map(|n| restarts(c, n)).sum();
        let killed = lane.kill_a_vmm();
        assert!(killed.starts_with("killed"), "{killed}");
        let healed = eventually(Duration::from_secs(120), || {
            let p = pods(c);
            p.len() == 2
                && p.iter().all(ready)
                && names.iter().map(|n| restarts(c, n)).sum::<i64>() > before
        });
        assert!(healed, "{class}: no recovery from a killed VMM:\n{}", dump(c));
        let vmms = eventually(Duration::from_secs(30), || lane.leftover("vmm") == 2);
        assert!(vmms, "{class}: {}", lane.report());
        assert!(lane.leftover("restored") >= 1, "{class}: not restored: {}", lane.report());
        // Ready is what the node last reported; the exec asks the runtime now, so a
        // container restarting in between is retried rather than taken for a broken clone.
        for n in pods(c).iter().map(name) {
            let mut last = String::new();
            let named = eventually(Duration::from_secs(30), || {
                let out = c.kubectl(&["exec", &n, "-c", "web", "--", "hostname"]);
                last = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                out.status.success() && last.trim() == n
            });
            assert!(named, "{class}: the clone's host name: {last}\n{}", dump(c));
        }
    }

    security_holds(c, class, node, lane);

    // Deleting the Deployment takes the pods, and their sandboxes, away.
    c.ok(&["delete", "deployment", "web", "--wait=true", "--timeout=120s"]);
    let gone = eventually(Duration::from_secs(120), || {
        c.json(&["get", "pods", "-l", "app=web"])["items"].as_array().is_none_or(|a| a.is_empty())
    });
    assert!(gone, "{class}: the pods stayed:\n{}", dump(c));
    if let Some(lane) = lane {
        let clean = eventually(Duration::from_secs(60), || {
            let l = lane.leftovers();
            ["vmm", "vmm-processes", "virtiofsd", "tap", "netns", "sandboxes", "mounts"]
                .iter()
                .all(|k| l.iter().any(|(n, v)| n == k && *v == 0))
        });
        assert!(clean, "{class}: left behind {}", lane.report());
    }
    c.ok(&["delete", "configmap/web-config", "service/web"]);
    to_ready
}

/// A pod whose container runs as a user with one capability, no_new_privs, the runtime's
/// default seccomp profile and a read-only root, beside one that outgrows its memory limit;
/// a pod sysctl. Asserted from inside, where the sandbox's kernel (the guest's own Linux, or
/// the Sentry) enforces them.
fn security_holds(c: &Cluster, class: &str, node: &str, lane: Option<&LaneNode>) {
    c.apply(&LOCKED.replace("CLASS", class).replace("NODE", node), &[]);
    let running = eventually(Duration::from_secs(180), || {
        c.json(&["get", "pod", "locked"])["status"]["containerStatuses"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["name"] == "locked" && s["ready"] == true))
    });
    if !running {
        let locked = c.kubectl(&["describe", "pod", "locked"]);
        let node_log = lane.map(|l| l.output()).unwrap_or_default();
        let tail: Vec<&str> = node_log.lines().rev().take(80).collect();
        panic!(
            "{class}: the locked pod did not run:\n{}\n{}\nthe node's last lines:\n{}",
            String::from_utf8_lossy(&locked.stdout),
            dump(c),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    let exec = |script: &str| {
        let out = c.kubectl(&["exec", "locked", "-c", "locked", "--", "sh", "-c", script]);
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    };
    let id = exec("id -u; id -g");
    assert_eq!(id, "1000\n1000\n", "{class}");
    let status = exec("grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status");
    for want in
        ["CapEff:\t0000000000000000", "CapBnd:\t0000000000000400", "NoNewPrivs:\t1", "Seccomp:\t2"]
    {
        assert!(status.contains(want), "{class}: {want:?} not in {status}");
    }
    // /tmp is part of the root; a volume keeps its own mode.
    let writes = exec("touch /x /tmp/x 2>&1; touch /scratch/x && echo volume ok");
    assert_eq!(
        writes,
        "touch: /x: Read-only file system\ntouch: /tmp/x: Read-only file system\nvolume ok\n",
        "{class}"
    );
    // A PID namespace of its own (the kubelet's default): its program is PID 1 and the
    // other containers' processes are nowhere to be seen.
    let ps = exec("ps -o pid,args");
    let first = ps.lines().nth(1).unwrap_or_default();
    assert!(
        first.trim_start().starts_with("1 ") && first.ends_with("sleep 100000"),
        "{class}: {ps}"
    );
    assert!(!ps.contains("sleep 200000"), "{class}: the peer's processes are visible: {ps}");
    // An exec joins it, its parent (the runtime) outside.
    assert_eq!(exec("echo $PPID"), "0\n", "{class}");
    let listed = exec("ls /proc | grep -c '^[0-9]'");
    assert!(
        listed.trim().parse::<u32>().is_ok_and(|n| n <= 4),
        "{class}: init, sh, ls, grep: {listed}"
    );
    // The pod's IPC sysctl: the Sentry's IPC namespace, or the guest's own kernel.
    assert_eq!(exec("cat /proc/sys/kernel/shmmax"), "1048576\n", "{class}");
    if class == "microvm" {
        // The pod's sysctl in the guest's own kernel, and a path the kubelet masks (the
        // guest's /proc has it).
        assert_eq!(exec("cat /proc/sys/net/core/somaxconn"), "1024\n", "{class}");
        assert_eq!(exec("wc -c < /proc/timer_list"), "0\n", "{class}: /proc/timer_list is masked");
    }
    let mut last = Value::Null;
    let oom = eventually(Duration::from_secs(120), || {
        last = c.json(&["get", "pod", "locked"])["status"]["containerStatuses"].clone();
        last.as_array().is_some_and(|s| {
            s.iter().any(|s| {
                let t = &s["state"]["terminated"];
                s["name"] == "hog" && t["reason"] == "OOMKilled" && t["exitCode"] == 137
            })
        })
    });
    assert!(oom, "{class}: the hog was not OOMKilled: {last}");
    c.ok(&["delete", "pod", "locked", "--wait=true", "--timeout=60s"]);
}

const LOCKED: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: locked}
spec:
  runtimeClassName: CLASS
  nodeName: NODE
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  securityContext:
    sysctls: [{name: net.core.somaxconn, value: "1024"}, {name: kernel.shmmax, value: "1048576"}]
  containers:
  - name: locked
    image: web:v1
    imagePullPolicy: Never
    command: [sleep, "100000"]
    resources: {limits: {memory: 16Mi}}
    volumeMounts: [{name: scratch, mountPath: /scratch}]
    securityContext:
      runAsUser: 1000
      runAsGroup: 1000
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}
      seccompProfile: {type: RuntimeDefault}
  - name: peer
    image: web:v1
    imagePullPolicy: Never
    command: [sleep, "200000"]
    resources: {limits: {memory: 16Mi}}
  - name: hog
    image: web:v1
    imagePullPolicy: Never
    command: [sh, -c, "x=0123456789; while true; do x=$x$x; done"]
    resources: {limits: {memory: 32Mi}}
  volumes: [{name: scratch, emptyDir: {}}]
"#;

/// Whether pod `from` reaches `to`'s httpd by its IP (bounded: a blocked connection is
/// rejected, but a wedged one must not stall the test).
fn reaches(c: &Cluster, from: &str, to_ip: &str) -> bool {
    let url = format!("http://{to_ip}/host.html");
    let out = c.kubectl(&["exec", from, "-c", "web", "--", "timeout", "5", "wget", "-qO-", &url]);
    out.status.success()
}

/// NetworkPolicies hold for pods of `class` on their node (enforced there, outside the
/// sandbox): denied ingress shuts pod-to-pod traffic; a policy allowing the pods' own label
/// opens it again, each within seconds.
fn policies_hold(c: &Cluster, class: &str, names: &[String]) {
    let ip = |n: &str| c.json(&["get", "pod", n])["status"]["podIP"].as_str().unwrap().to_owned();
    let (a, b) = (&names[0], ip(&names[1]));
    assert!(reaches(c, a, &b), "{class}: {a} -> {b} before any policy");
    c.apply(DENY_INGRESS, &[]);
    let shut = eventually(Duration::from_secs(10), || !reaches(c, a, &b));
    assert!(shut, "{class}: {a} still reaches {b} under a deny-all ingress policy");
    c.apply(ALLOW_WEB, &[]);
    let open = eventually(Duration::from_secs(10), || reaches(c, a, &b));
    assert!(open, "{class}: {a} -> {b} not allowed again by a policy naming app=web");
    c.ok(&["delete", "networkpolicy", "deny-ingress", "allow-web"]);
}

const DENY_INGRESS: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny-ingress}\nspec: {podSelector: {}, policyTypes: [Ingress]}\n";
const ALLOW_WEB: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: allow-web}\nspec:\n  podSelector: {matchLabels: {app: web}}\n  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: http}]}]\n";

#[test]
fn a_deployment_runs_in_microvms_and_in_sentry_sandboxes_alike() {
    let started = Instant::now();
    let c = Cluster::up(&["--tls-san", "10.0.2.2", "--runtime-handlers", "sentry"]);
    let images = tempfile::tempdir().unwrap();
    let tar = node::busybox_image_tar(images.path(), &[("/www/index.html", "hello\n")]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringfence"))
        .args(["image", "import", "--data-dir"])
        .arg(c.data_dir())
        .arg(&tar)
        .args(["--name", "web:v1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let host_node =
        c.json(&["get", "nodes"])["items"][0]["metadata"]["name"].as_str().unwrap().to_owned();

    let lane = LaneNode::start(&c, "lane-node", &[("web:v1", &tar)]);
    let lane_ready = started.elapsed().as_secs_f64();
    c.apply(MICROVM_CLASS, &[]);
    let microvm = scenario(&c, "microvm", &lane.name, Some(&lane));
    let sentry = scenario(&c, "sentry", &host_node, None);
    let (after, output) = lane.stop();
    for k in ["vmm-processes", "virtiofsd", "tap", "netns", "sandboxes", "mounts"] {
        assert!(
            after.iter().any(|(n, v)| n == k && *v == 0),
            "after the node stopped {after:?}:\n{output}"
        );
    }
    eprintln!(
        "microvm pods: lane node Ready at {lane_ready:.1} s; apply -> 2 pods Ready: microvm {microvm:.1} s, sentry {sentry:.1} s; whole test {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
