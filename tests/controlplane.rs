//! The scheduler and controllers end to end: the real kubectl against `ringfence server`, with
//! `ringfence sim-nodes` as the nodes. Grace periods and tolerations are short so that node
//! failure scenarios finish in seconds.

mod common;

use std::collections::HashMap;
use std::io::BufReader;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::sim::{SimNodes, deployment, ready};
use common::{Backend, Cluster, eventually};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

fn cluster(extra: &[&str]) -> Cluster {
    Cluster::start_with(Backend::Embedded, extra)
}

fn items(c: &Cluster, args: &[&str]) -> Vec<Value> {
    c.json(args)["items"].as_array().cloned().unwrap_or_default()
}

fn node_of(p: &Value) -> String {
    p["spec"]["nodeName"].as_str().unwrap_or("").to_owned()
}

/// Live (not terminating) pods with `selector`.
fn live_pods(c: &Cluster, selector: &str) -> Vec<Value> {
    items(c, &["get", "pods", "-l", selector])
        .into_iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect()
}

fn rollout(c: &Cluster, what: &str) {
    c.ok(&["rollout", "status", what, "--timeout=60s"]);
}

#[test]
fn deployment_rolls_out_respects_max_unavailable_undoes_and_scales() {
    let c = cluster(&[]);
    let _nodes = SimNodes::start(&c, "sim", 3, &[]);
    let strategy =
        "  strategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 1, maxSurge: 1}}";
    c.apply(&deployment("web", 3, strategy, ""), &[]);
    rollout(&c, "deployment/web");
    let d = c.json(&["get", "deployment", "web"]);
    assert_eq!(d["status"]["availableReplicas"], 3, "{d}");
    assert!(
        d["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["type"] == "Available" && x["status"] == "True"),
        "{d}"
    );

    // Watch every pod change during the rollout.
    let mut watch = c
        .kubectl_cmd()
        .args(["get", "pods", "-l", "app=web", "--watch", "-o", "json", "--output-watch-events"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for v in serde_json::Deserializer::from_reader(BufReader::new(stdout)).into_iter::<Value>()
        {
            match v {
                Ok(v) => {
                    if tx.send(v).is_err() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    });
    let mut pods: HashMap<String, Value> = HashMap::new();
    let available = |pods: &HashMap<String, Value>| pods.values().filter(|p| ready(p)).count();
    let apply = |pods: &mut HashMap<String, Value>, ev: Value| {
        let name = ev["object"]["metadata"]["name"].as_str().unwrap_or("").to_owned();
        if ev["type"] == "DELETED" {
            pods.remove(&name);
        } else {
            pods.insert(name, ev["object"].clone());
        }
    };
    while available(&pods) < 3 {
        apply(&mut pods, rx.recv_timeout(WAIT).expect("initial pods"));
    }
    c.ok(&["set", "image", "deployment/web", "app=registry.k8s.io/pause:3.10"]);
    let started = Instant::now();
    let mut steps = 0;
    let mut min_available = 3;
    while let Ok(ev) = rx.recv_timeout(Duration::from_secs(2)) {
        apply(&mut pods, ev);
        steps += 1;
        min_available = min_available.min(available(&pods));
        let live = pods.values().filter(|p| p["metadata"]["deletionTimestamp"].is_null()).count();
        assert!(available(&pods) >= 2, "maxUnavailable 1 violated at step {steps}: {pods:#?}");
        assert!(live <= 4, "maxSurge 1 violated at step {steps}");
        assert!(started.elapsed() < WAIT, "rollout did not settle");
    }
    let _ = watch.kill();
    let _ = watch.wait();
    rollout(&c, "deployment/web");
    assert!(steps >= 6, "the rollout was observed ({steps} pod events)");
    let images: Vec<String> = live_pods(&c, "app=web")
        .iter()
        .map(|p| p["spec"]["containers"][0]["image"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(images, vec!["registry.k8s.io/pause:3.10"; 3]);
    let history = c.ok(&["rollout", "history", "deployment/web"]);
    assert!(history.contains('1') && history.contains('2'), "{history}");

    c.ok(&["rollout", "undo", "deployment/web"]);
    rollout(&c, "deployment/web");
    let d = c.json(&["get", "deployment", "web"]);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.k8s.io/pause:3.9"
    );
    assert_eq!(d["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "3", "{d}");
    let sets = items(&c, &["get", "replicasets", "-l", "app=web"]);
    assert_eq!(sets.len(), 2, "the first revision's ReplicaSet is reused, not duplicated");
    assert!(
        live_pods(&c, "app=web")
            .iter()
            .all(|p| p["spec"]["containers"][0]["image"] == "registry.k8s.io/pause:3.9")
    );

    c.ok(&["scale", "deployment/web", "--replicas=5"]);
    rollout(&c, "deployment/web");
    assert_eq!(live_pods(&c, "app=web").len(), 5);
    c.ok(&["scale", "deployment/web", "--replicas=1"]);
    assert!(eventually(WAIT, || live_pods(&c, "app=web").len() == 1));
    rollout(&c, "deployment/web");
    assert_eq!(c.json(&["get", "deployment", "web"])["status"]["replicas"], 1);

    // Deleting the Deployment takes its ReplicaSets and pods with it.
    c.ok(&["delete", "deployment", "web"]);
    assert!(
        eventually(WAIT, || items(&c, &["get", "replicasets,pods", "-l", "app=web"]).is_empty()),
        "{:?}",
        c.ok(&["get", "rs,pods", "-l", "app=web"])
    );
}

#[test]
fn daemonset_covers_every_node_and_job_completes() {
    let c = cluster(&[]);
    let _a = SimNodes::start(&c, "a", 2, &["--run-seconds", "0.2"]);
    c.apply(
        r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: agent, image: "registry.k8s.io/pause:3.9"}]
"#,
        &[],
    );
    let nodes = |c: &Cluster| {
        let mut n: Vec<String> =
            live_pods(c, "app=agent").iter().filter(|p| ready(p)).map(node_of).collect();
        n.sort();
        n
    };
    assert!(eventually(WAIT, || nodes(&c) == ["a-0", "a-1"]), "{:?}", nodes(&c));
    rollout(&c, "daemonset/agent");
    let _b = SimNodes::start(&c, "b", 1, &[]);
    assert!(eventually(WAIT, || nodes(&c) == ["a-0", "a-1", "b-0"]), "{:?}", nodes(&c));
    let ds = c.json(&["get", "daemonset", "agent"]);
    assert!(
        eventually(WAIT, || c.json(&["get", "daemonset", "agent"])["status"]["numberAvailable"]
            == 3),
        "{ds}"
    );

    c.apply(
        r#"
apiVersion: batch/v1
kind: Job
metadata: {name: work}
spec:
  completions: 5
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers: [{name: work, image: "registry.k8s.io/pause:3.9"}]
"#,
        &[],
    );
    // Never more than `parallelism` pods running at once.
    let start = Instant::now();
    let mut most = 0;
    while start.elapsed() < WAIT {
        let running = items(&c, &["get", "pods", "-l", "job-name=work"])
            .iter()
            .filter(|p| p["status"]["phase"] == "Running" || p["status"]["phase"] == "Pending")
            .count();
        most = most.max(running);
        let job = c.json(&["get", "job", "work"]);
        if job["status"]["succeeded"] == 5 {
            break;
        }
    }
    assert!(most <= 2, "{most} pods ran at once");
    c.ok(&["wait", "--for=condition=complete", "job/work", "--timeout=30s"]);
    let job = c.json(&["get", "job", "work"]);
    assert_eq!(job["status"]["succeeded"], 5, "{job}");
    let succeeded = items(&c, &["get", "pods", "-l", "job-name=work"])
        .iter()
        .filter(|p| p["status"]["phase"] == "Succeeded")
        .count();
    assert_eq!(succeeded, 5);
}

#[test]
fn scheduling_honours_anti_affinity_and_taints() {
    let c = cluster(&[]);
    let _n = SimNodes::start(&c, "sim", 3, &[]);
    let anti = r#"      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - topologyKey: kubernetes.io/hostname
            labelSelector: {matchLabels: {app: spread}}"#;
    c.apply(&deployment("spread", 3, "", anti), &[]);
    rollout(&c, "deployment/spread");
    let mut nodes: Vec<String> = live_pods(&c, "app=spread").iter().map(node_of).collect();
    nodes.sort();
    assert_eq!(nodes, ["sim-0", "sim-1", "sim-2"], "one replica per node");
    c.ok(&["scale", "deployment/spread", "--replicas=4"]);
    let pending = |c: &Cluster| {
        live_pods(c, "app=spread").into_iter().filter(|p| node_of(p).is_empty()).collect::<Vec<_>>()
    };
    assert!(eventually(WAIT, || pending(&c).len() == 1));
    let name = pending(&c)[0]["metadata"]["name"].as_str().unwrap().to_owned();
    let found = eventually(WAIT, || {
        items(&c, &["get", "events", "--field-selector", &format!("involvedObject.name={name}")])
            .iter()
            .any(|e| {
                e["reason"] == "FailedScheduling"
                    && e["message"].as_str().unwrap_or("").contains(
                        "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules",
                    )
            })
    });
    assert!(found, "{}", c.ok(&["get", "events"]));
    let described = c.ok(&["describe", "pod", &name]);
    assert!(described.contains("FailedScheduling"), "{described}");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(pending(&c).len(), 1, "still pending");
    c.ok(&["delete", "deployment", "spread"]);

    // A tainted node takes only pods that tolerate its taint.
    c.ok(&["taint", "nodes", "sim-0", "dedicated=infra:NoSchedule"]);
    c.apply(&deployment("plain", 6, "", ""), &[]);
    let tolerate = r#"      tolerations: [{key: dedicated, operator: Equal, value: infra, effect: NoSchedule}]
      nodeSelector: {kubernetes.io/hostname: sim-0}"#;
    c.apply(&deployment("tolerant", 2, "", tolerate), &[]);
    rollout(&c, "deployment/plain");
    rollout(&c, "deployment/tolerant");
    let plain: Vec<String> = live_pods(&c, "app=plain").iter().map(node_of).collect();
    assert!(plain.iter().all(|n| n != "sim-0"), "{plain:?}");
    assert!(
        plain.contains(&"sim-1".to_owned()) && plain.contains(&"sim-2".to_owned()),
        "spread: {plain:?}"
    );
    let tolerant: Vec<String> = live_pods(&c, "app=tolerant").iter().map(node_of).collect();
    assert_eq!(tolerant, ["sim-0", "sim-0"]);
}

#[test]
fn pods_of_a_silent_node_are_recreated_elsewhere() {
    let c = cluster(&["--node-monitor-grace-period", "2"]);
    let _a = SimNodes::start(&c, "a", 2, &[]);
    let doomed = SimNodes::start(&c, "b", 1, &[]);
    // Everything starts on b-0.
    c.ok(&["cordon", "a-0", "a-1"]);
    let tolerate = r#"      tolerations:
      - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 1}
      - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 1}"#;
    c.apply(&deployment("web", 3, "", tolerate), &[]);
    rollout(&c, "deployment/web");
    assert!(live_pods(&c, "app=web").iter().all(|p| node_of(p) == "b-0"));
    c.ok(&["uncordon", "a-0", "a-1"]);

    doomed.kill();
    let stopped = Instant::now();
    let recovered = eventually(Duration::from_secs(2 + 1 + 10), || {
        let pods = live_pods(&c, "app=web");
        pods.len() == 3 && pods.iter().all(|p| ready(p) && node_of(p).starts_with("a-"))
    });
    assert!(recovered, "{}", c.ok(&["get", "pods", "-o", "wide"]));
    eprintln!("pods recreated {:.1} s after the node went silent", stopped.elapsed().as_secs_f64());
    let node = c.json(&["get", "node", "b-0"]);
    let taints: Vec<&str> = node["spec"]["taints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["key"].as_str().unwrap())
        .collect();
    assert!(taints.contains(&"node.kubernetes.io/unreachable"), "{node}");
    let ready_cond = node["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .cloned()
        .unwrap();
    assert_eq!(ready_cond["status"], "Unknown");
    assert!(c.ok(&["get", "nodes"]).contains("NotReady"));
}

#[test]
fn a_restarted_server_finishes_the_rollout() {
    let c = cluster(&[]);
    let nodes = SimNodes::start(&c, "sim", 2, &[]);
    // Slow enough to interrupt: each new pod must be ready for 2 s before the next.
    let strategy = "  minReadySeconds: 2\n  strategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 0, maxSurge: 1}}";
    c.apply(&deployment("web", 4, strategy, ""), &[]);
    rollout(&c, "deployment/web");
    c.ok(&["set", "image", "deployment/web", "app=registry.k8s.io/pause:3.10"]);
    assert!(eventually(WAIT, || items(&c, &["get", "replicasets", "-l", "app=web"]).len() == 2));
    std::thread::sleep(Duration::from_secs(1));
    let d = c.json(&["get", "deployment", "web"]);
    assert_ne!(d["status"]["updatedReplicas"], 4, "the rollout is still under way: {d}");
    let dir = c.stop();
    let c = Cluster::start_in(dir, &[]);
    rollout(&c, "deployment/web");
    let pods = live_pods(&c, "app=web");
    assert_eq!(pods.len(), 4);
    assert!(
        pods.iter().all(
            |p| p["spec"]["containers"][0]["image"] == "registry.k8s.io/pause:3.10" && ready(p)
        )
    );
    drop(nodes);
}

#[test]
fn services_cronjobs_and_autoscaling() {
    let c = cluster(&["--horizontal-pod-autoscaler-sync-period", "0.5"]);
    let _n = SimNodes::start(&c, "sim", 2, &["--run-seconds", "0.2"]);

    // Endpoints and EndpointSlices follow the ready pods a Service selects.
    let ports = "      containers: [{name: app, image: \"registry.k8s.io/pause:3.9\", ports: [{name: http, containerPort: 8080}]}]";
    c.apply(
        &deployment("api", 2, "", "").replace(
            "      containers: [{name: app, image: \"registry.k8s.io/pause:3.9\"}]",
            ports,
        ),
        &[],
    );
    c.apply("apiVersion: v1\nkind: Service\nmetadata: {name: api}\nspec:\n  selector: {app: api}\n  ports: [{name: web, port: 80, targetPort: http}]\n", &[]);
    rollout(&c, "deployment/api");
    let addresses = |c: &Cluster| -> Vec<String> {
        let ep = c.json(&["get", "endpoints", "api"]);
        let mut ips: Vec<String> = ep["subsets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["ports"][0]["port"] == 8080)
            .flat_map(|s| s["addresses"].as_array().cloned().unwrap_or_default())
            .map(|a| a["ip"].as_str().unwrap_or("").to_owned())
            .collect();
        ips.sort();
        ips
    };
    let pod_ips = |c: &Cluster| -> Vec<String> {
        let mut ips: Vec<String> = live_pods(c, "app=api")
            .iter()
            .map(|p| p["status"]["podIP"].as_str().unwrap_or("").to_owned())
            .collect();
        ips.sort();
        ips
    };
    assert!(
        eventually(WAIT, || addresses(&c).len() == 2 && addresses(&c) == pod_ips(&c)),
        "{}",
        c.ok(&["get", "endpoints", "api", "-o", "yaml"])
    );
    c.ok(&["scale", "deployment/api", "--replicas=3"]);
    assert!(eventually(WAIT, || addresses(&c).len() == 3 && addresses(&c) == pod_ips(&c)));
    let ready_slice_endpoints = |c: &Cluster| -> usize {
        items(c, &["get", "endpointslices", "-l", "kubernetes.io/service-name=api"])
            .iter()
            .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
            .filter(|e| e["conditions"]["ready"] == true)
            .count()
    };
    assert!(eventually(WAIT, || ready_slice_endpoints(&c) == 3));
    c.ok(&["delete", "service", "api"]);
    assert!(eventually(WAIT, || items(
        &c,
        &["get", "endpoints,endpointslices", "-l", "app!=nothing"]
    )
    .iter()
    .all(|o| o["metadata"]["name"] == "kubernetes"
        || !o["metadata"]["name"].as_str().unwrap_or("").starts_with("api"))));

    // A CronJob whose last run was two minutes ago is due now.
    c.apply(
        r#"
apiVersion: batch/v1
kind: CronJob
metadata: {name: tick}
spec:
  schedule: "* * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: tick, image: "registry.k8s.io/pause:3.9"}]
"#,
        &[],
    );
    let before = (chrono_now() - 120).to_string();
    c.ok(&[
        "patch",
        "cronjob",
        "tick",
        "--subresource=status",
        "--type=merge",
        "-p",
        &format!(r#"{{"status":{{"lastScheduleTime":"{}"}}}}"#, rfc3339(&before)),
    ]);
    assert!(eventually(WAIT, || !items(&c, &["get", "jobs"]).is_empty()));
    let job = items(&c, &["get", "jobs"])[0].clone();
    let name = job["metadata"]["name"].as_str().unwrap().to_owned();
    assert!(name.starts_with("tick-"), "{name}");
    assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "CronJob");
    c.ok(&["wait", "--for=condition=complete", &format!("job/{name}"), "--timeout=30s"]);
    assert!(eventually(WAIT, || {
        !c.json(&["get", "cronjob", "tick"])["status"]["lastSuccessfulTime"].is_null()
    }));
    assert_eq!(
        items(&c, &["get", "jobs"]).len(),
        1,
        "one run for the missed minutes, not one each"
    );

    // The autoscaler follows CPU usage reported in PodMetrics.
    let busy = "      containers: [{name: app, image: \"registry.k8s.io/pause:3.9\", resources: {requests: {cpu: 100m}}}]";
    let load = deployment("load", 1, "", "")
        .replace(
            "    metadata: {labels: {app: load}}",
            "    metadata: {labels: {app: load}, annotations: {sim.ringfence.dev/cpu-usage: 200m}}",
        )
        .replace("      containers: [{name: app, image: \"registry.k8s.io/pause:3.9\"}]", busy);
    c.apply(&load, &[]);
    rollout(&c, "deployment/load");
    c.apply(
        r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: load}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: load}
  minReplicas: 1
  maxReplicas: 4
  metrics: [{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}}]
  behavior: {scaleDown: {stabilizationWindowSeconds: 0}}
"#,
        &[],
    );
    assert!(
        eventually(WAIT, || live_pods(&c, "app=load").len() == 4),
        "{}",
        c.ok(&["describe", "hpa", "load"])
    );
    assert!(
        eventually(WAIT, || c.ok(&["get", "hpa", "load"]).contains("cpu: 200%/50%")),
        "{}",
        c.ok(&["get", "hpa", "load"])
    );
    let top = c.ok(&["top", "pods", "-l", "app=load"]);
    assert!(top.contains("200m"), "{top}");
    c.ok(&["patch", "deployment", "load", "--type=merge", "-p",
        r#"{"spec":{"template":{"metadata":{"annotations":{"sim.ringfence.dev/cpu-usage":"10m"}}}}}"#]);
    assert!(
        eventually(WAIT, || live_pods(&c, "app=load").len() == 1),
        "{}",
        c.ok(&["describe", "hpa", "load"])
    );
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Unix seconds as RFC 3339 (via date(1), to keep the tests free of a time crate).
fn rfc3339(unix: &str) -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{unix}"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn scheduler_and_controllers_run_apart() {
    let c = cluster(&["--scheduler=false", "--controllers=false"]);
    let _n = SimNodes::start(&c, "sim", 2, &[]);
    c.apply(&deployment("web", 2, "", ""), &[]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(items(&c, &["get", "replicasets"]).is_empty(), "no controllers in the server");
    let spawn = |what: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_ringfence"))
            .args([what, "--kubeconfig"])
            .arg(&c.kubeconfig)
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut parts = [spawn("controllers"), spawn("scheduler")];
    rollout(&c, "deployment/web");
    assert!(live_pods(&c, "app=web").iter().all(|p| ready(p) && node_of(p).starts_with("sim-")));
    for p in &mut parts {
        let _ = p.kill();
        let _ = p.wait();
    }
}

#[test]
fn higher_priority_pods_preempt_lower_ones() {
    let c = cluster(&[]);
    let _n = SimNodes::start(&c, "sim", 1, &["--cpu", "2"]);
    let one_cpu = "      containers: [{name: app, image: \"registry.k8s.io/pause:3.9\", resources: {requests: {cpu: \"1\"}}}]";
    let plain = "      containers: [{name: app, image: \"registry.k8s.io/pause:3.9\"}]";
    c.apply(&deployment("filler", 2, "", "").replace(plain, one_cpu), &[]);
    rollout(&c, "deployment/filler");
    c.apply("apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: urgent}\nvalue: 1000\n", &[]);
    c.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: urgent}
spec:
  priorityClassName: urgent
  terminationGracePeriodSeconds: 1
  containers: [{name: app, image: "registry.k8s.io/pause:3.9", resources: {requests: {cpu: "1"}}}]
"#,
        &[],
    );
    assert!(
        eventually(WAIT, || ready(&c.json(&["get", "pod", "urgent"]))),
        "{}",
        c.ok(&["get", "events"])
    );
    let urgent = c.json(&["get", "pod", "urgent"]);
    assert_eq!(urgent["spec"]["priority"], 1000, "resolved from the PriorityClass");
    let events = items(&c, &["get", "events"]);
    assert!(events.iter().any(|e| e["reason"] == "Preempted"), "{events:#?}");
    // The filler's replacement waits: the node is full again.
    assert!(eventually(WAIT, || {
        let pods = live_pods(&c, "app=filler");
        pods.len() == 2 && pods.iter().filter(|p| node_of(p).is_empty()).count() == 1
    }));
}

fn pod_cidr_of(c: &Cluster, node: &str) -> String {
    c.json(&["get", "node", node])
        .pointer("/spec/podCIDR")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned()
}

fn node_manifest(name: &str, pod_cidr: Option<&str>) -> String {
    let spec =
        pod_cidr.map(|r| format!("spec:\n  podCIDR: {r}\n  podCIDRs: [{r}]\n")).unwrap_or_default();
    format!("apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n{spec}")
}

#[test]
fn nodes_get_pod_ranges_from_the_cluster_cidr() {
    // Room for four /24s: one a node brings itself, three handed out, then none.
    let c = cluster(&["--cluster-cidr", "10.230.0.0/22", "--node-cidr-mask-size", "24"]);
    c.apply(&node_manifest("own", Some("10.230.1.0/24")), &[]);
    for n in ["n1", "n2", "n3"] {
        c.apply(&node_manifest(n, None), &[]);
    }
    let mut ranges = Vec::new();
    for n in ["n1", "n2", "n3"] {
        assert!(
            eventually(Duration::from_secs(10), || !pod_cidr_of(&c, n).is_empty()),
            "node {n} got no pod range"
        );
        let node = c.json(&["get", "node", n]);
        assert_eq!(node["spec"]["podCIDRs"], serde_json::json!([pod_cidr_of(&c, n)]));
        ranges.push(pod_cidr_of(&c, n));
    }
    ranges.sort();
    assert_eq!(
        ranges,
        ["10.230.0.0/24", "10.230.2.0/24", "10.230.3.0/24"],
        "distinct, around the node's own"
    );
    // The cluster CIDR is used up: the next node gets a Warning Event naming the cause.
    c.apply(&node_manifest("n4", None), &[]);
    assert!(
        eventually(Duration::from_secs(10), || {
            c.ok(&["get", "events", "-A", "--field-selector", "involvedObject.name=n4"])
                .contains("CIDRNotAvailable")
        }),
        "no CIDRNotAvailable event for n4"
    );
    assert_eq!(pod_cidr_of(&c, "n4"), "");
    // A node that goes frees its range for the one waiting.
    c.ok(&["delete", "node", "n2"]);
    assert!(
        eventually(Duration::from_secs(40), || !pod_cidr_of(&c, "n4").is_empty()),
        "n4 never got the freed range"
    );
    assert!(ranges.contains(&pod_cidr_of(&c, "n4")));
    // A bad flag is refused at start, with the flag named.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringfence"))
        .args([
            "server",
            "--data-dir",
            "/nonexistent-never-created",
            "--cluster-cidr",
            "10.0.0.0/8",
            "--node-cidr-mask-size",
            "31",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--cluster-cidr"), "{out:?}");
}
