//! kubectl's typed clients send `application/vnd.kubernetes.protobuf` bodies: every `kubectl
//! create` subcommand, `kubectl autoscale`, `kubectl auth reconcile`, `kubectl debug` (node
//! pods and `--copy-to` copies) and `kubectl drain`'s evictions. Each must be stored with every field it sent;
//! a field the server does not know is refused with 415, never dropped.

mod common;

use std::time::Duration;

use common::sim::SimNodes;
use common::{Backend, Cluster, admin, eventually, watchdog};
use serde_json::{Value, json};

/// Every `kubectl create` subcommand of kubectl 1.32, `kubectl autoscale` and `kubectl auth
/// reconcile`.
fn every_create_subcommand(b: Backend) {
    let _dog = watchdog("every_create_subcommand", Duration::from_secs(120));
    let c = Cluster::new(b);
    let team = ["-n", "team"];
    let ok = |args: &[&str]| c.ok(&[&team[..], args].concat());
    let get = |args: &[&str]| c.json(&[&team[..], args].concat());
    c.ok(&["create", "namespace", "team"]);

    // Configuration and credentials.
    ok(&["create", "configmap", "cfg", "--from-literal=a=b"]);
    assert_eq!(get(&["get", "configmap", "cfg"])["data"], json!({"a": "b"}));
    ok(&["create", "secret", "generic", "s1", "--from-literal=pw=hunter2"]);
    assert_eq!(get(&["get", "secret", "s1"])["data"]["pw"], "aHVudGVyMg==");
    ok(&[
        "create",
        "secret",
        "docker-registry",
        "reg",
        "--docker-server=registry.example",
        "--docker-username=u",
        "--docker-password=p",
        "--docker-email=u@example.com",
    ]);
    let reg = get(&["get", "secret", "reg"]);
    assert_eq!(reg["type"], "kubernetes.io/dockerconfigjson");
    let config = base64_json(&reg["data"][".dockerconfigjson"]);
    assert_eq!(config["auths"]["registry.example"]["username"], "u", "{config}");
    assert_eq!(config["auths"]["registry.example"]["email"], "u@example.com", "{config}");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["web.example".to_owned()])
        .and_then(|p| p.self_signed(&key))
        .expect("certificate");
    let cert_file = c.write("tls.crt", &cert.pem());
    let key_file = c.write("tls.key", &key.serialize_pem());
    ok(&[
        "create",
        "secret",
        "tls",
        "web-tls",
        &format!("--cert={}", cert_file.display()),
        &format!("--key={}", key_file.display()),
    ]);
    let tls = get(&["get", "secret", "web-tls"]);
    assert_eq!(tls["type"], "kubernetes.io/tls");
    assert_eq!(base64(&tls["data"]["tls.crt"]), cert.pem());
    assert_eq!(base64(&tls["data"]["tls.key"]), key.serialize_pem());
    ok(&["create", "serviceaccount", "bot"]);
    let token = ok(&["create", "token", "bot", "--duration=10m", "--audience=vault"]);
    assert_eq!(token.trim().split('.').count(), 3, "a JWT: {token}");

    // Access control.
    ok(&[
        "create",
        "role",
        "r1",
        "--verb=get,list",
        "--resource=pods,deployments.apps",
        "--resource-name=web",
    ]);
    let rules = &get(&["get", "role", "r1"])["rules"];
    assert_eq!(rules[0]["apiGroups"], json!([""]), "the core group's empty name survives: {rules}");
    assert_eq!(rules[1]["apiGroups"], json!(["apps"]), "{rules}");
    assert_eq!(rules[0]["resourceNames"], json!(["web"]), "{rules}");
    ok(&["create", "rolebinding", "rb1", "--role=r1", "--serviceaccount=team:bot", "--user=al"]);
    let rb = get(&["get", "rolebinding", "rb1"]);
    assert_eq!(
        rb["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r1"})
    );
    assert_eq!(
        rb["subjects"],
        json!([
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "al"},
            {"kind": "ServiceAccount", "name": "bot", "namespace": "team"}
        ])
    );
    c.ok(&["create", "clusterrole", "reader", "--verb=get", "--resource=nodes"]);
    c.ok(&["create", "clusterrole", "logs", "--verb=get", "--non-resource-url=/logs/*"]);
    assert_eq!(
        c.json(&["get", "clusterrole", "logs"])["rules"][0]["nonResourceURLs"],
        json!(["/logs/*"])
    );
    c.ok(&["create", "clusterrole", "agg", "--aggregation-rule=example.com/aggregate=true"]);
    assert_eq!(
        c.json(&["get", "clusterrole", "agg"])["aggregationRule"],
        json!({"clusterRoleSelectors": [{"matchLabels": {"example.com/aggregate": "true"}}]})
    );
    c.ok(&[
        "create",
        "clusterrolebinding",
        "crb",
        "--clusterrole=reader",
        "--user=al",
        "--group=devs",
        "--serviceaccount=team:bot",
    ]);
    let crb = c.json(&["get", "clusterrolebinding", "crb"]);
    assert_eq!(crb["roleRef"]["kind"], "ClusterRole");
    let kinds: Vec<&str> =
        crb["subjects"].as_array().unwrap().iter().filter_map(|s| s["kind"].as_str()).collect();
    assert_eq!(kinds, ["User", "Group", "ServiceAccount"]);

    // Workloads.
    ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx:1.25",
        "--replicas=0",
        "--port=80",
        "--",
        "nginx",
        "-g",
        "daemon off;",
    ]);
    let d = get(&["get", "deployment", "web"]);
    assert_eq!(d["spec"]["replicas"], 0, "an explicit zero survives");
    let container = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["ports"][0]["containerPort"], 80);
    assert_eq!(container["command"], json!(["nginx", "-g", "daemon off;"]));
    ok(&["create", "job", "once", "--image=busybox", "--", "date"]);
    let job = get(&["get", "job", "once"]);
    assert_eq!(job["spec"]["template"]["spec"]["containers"][0]["command"], json!(["date"]));
    assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");
    ok(&[
        "create",
        "cronjob",
        "tick",
        "--image=busybox",
        "--schedule=*/1 * * * *",
        "--restart=OnFailure",
        "--",
        "date",
    ]);
    let cron = get(&["get", "cronjob", "tick"]);
    assert_eq!(cron["spec"]["schedule"], "*/1 * * * *");
    let pod = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod["containers"][0]["command"], json!(["date"]), "{cron}");
    assert_eq!(pod["restartPolicy"], "OnFailure");
    // A Job from the CronJob carries its whole (defaulted) template back in protobuf.
    ok(&["create", "job", "manual", "--from=cronjob/tick"]);
    let manual = get(&["get", "job", "manual"]);
    assert_eq!(manual["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"], "manual");
    let owner = &manual["metadata"]["ownerReferences"][0];
    assert_eq!(
        (owner["kind"].as_str(), owner["name"].as_str(), owner["controller"].as_bool()),
        (Some("CronJob"), Some("tick"), Some(true))
    );
    assert_eq!(owner["uid"], cron["metadata"]["uid"]);
    let copied = &manual["spec"]["template"]["spec"];
    for field in ["containers", "restartPolicy", "dnsPolicy", "terminationGracePeriodSeconds"] {
        assert_eq!(copied[field], pod[field], "{field}: {manual}");
    }
    c.ok(&["create", "priorityclass", "high", "--value=1000", "--description=for x"]);
    c.ok(&["create", "priorityclass", "low", "--value=-10", "--preemption-policy=Never"]);
    let high = c.json(&["get", "priorityclass", "high"]);
    assert_eq!((high["value"].as_i64(), high["description"].as_str()), (Some(1000), Some("for x")));
    assert_eq!(high["preemptionPolicy"], "PreemptLowerPriority", "defaulted");
    let low = c.json(&["get", "priorityclass", "low"]);
    assert_eq!(
        (low["value"].as_i64(), low["preemptionPolicy"].as_str()),
        (Some(-10), Some("Never"))
    );
    ok(&["autoscale", "deployment", "web", "--min=1", "--max=3", "--cpu-percent=50"]);
    let hpa = get(&["get", "hpa", "web"]);
    assert_eq!(
        (hpa["spec"]["minReplicas"].as_i64(), hpa["spec"]["maxReplicas"].as_i64()),
        (Some(1), Some(3))
    );

    // Services and ingress.
    ok(&["create", "service", "clusterip", "svc1", "--tcp=80:8080"]);
    let svc = get(&["get", "service", "svc1"]);
    assert_eq!(
        (svc["spec"]["ports"][0]["port"].as_i64(), svc["spec"]["ports"][0]["targetPort"].as_i64()),
        (Some(80), Some(8080))
    );
    assert!(svc["spec"]["ports"][0].get("nodePort").is_none());
    ok(&["create", "service", "clusterip", "headless", "--clusterip=None"]);
    assert_eq!(get(&["get", "service", "headless"])["spec"]["clusterIP"], "None");
    ok(&["create", "service", "nodeport", "np", "--tcp=80:8080", "--node-port=30080"]);
    let np = get(&["get", "service", "np"]);
    assert_eq!(
        (np["spec"]["type"].as_str(), np["spec"]["ports"][0]["nodePort"].as_i64()),
        (Some("NodePort"), Some(30080))
    );
    ok(&["create", "service", "loadbalancer", "lb", "--tcp=443:8443"]);
    assert_eq!(get(&["get", "service", "lb"])["spec"]["type"], "LoadBalancer");
    ok(&["create", "service", "externalname", "ext", "--external-name=db.example.com"]);
    let ext = get(&["get", "service", "ext"]);
    assert_eq!(
        (ext["spec"]["type"].as_str(), ext["spec"]["externalName"].as_str()),
        (Some("ExternalName"), Some("db.example.com"))
    );
    ok(&[
        "create",
        "ingress",
        "web",
        "--class=edge",
        "--rule=foo.example/api*=svc1:8080,tls=web-tls",
        "--rule=bar.example/=svc2:http",
        "--default-backend=defsvc:80",
        "--annotation=team=web",
    ]);
    let ing = get(&["get", "ingress", "web"]);
    assert_eq!(ing["metadata"]["annotations"]["team"], "web");
    assert_eq!(ing["spec"]["ingressClassName"], "edge");
    assert_eq!(
        ing["spec"]["defaultBackend"],
        json!({"service": {"name": "defsvc", "port": {"number": 80}}})
    );
    assert_eq!(ing["spec"]["tls"], json!([{"hosts": ["foo.example"], "secretName": "web-tls"}]));
    assert_eq!(
        ing["spec"]["rules"],
        json!([
            {"host": "foo.example", "http": {"paths": [{"path": "/api", "pathType": "Prefix",
                "backend": {"service": {"name": "svc1", "port": {"number": 8080}}}}]}},
            {"host": "bar.example", "http": {"paths": [{"path": "/", "pathType": "Exact",
                "backend": {"service": {"name": "svc2", "port": {"name": "http"}}}}]}}
        ])
    );

    // Policy.
    ok(&["create", "poddisruptionbudget", "pdb", "--selector=app=web", "--min-available=50%"]);
    ok(&["create", "pdb", "pdb2", "--selector=app=web", "--max-unavailable=1"]);
    assert_eq!(get(&["get", "pdb", "pdb"])["spec"]["minAvailable"], "50%");
    let pdb2 = get(&["get", "pdb", "pdb2"]);
    assert_eq!(pdb2["spec"]["maxUnavailable"], 1);
    assert_eq!(pdb2["spec"]["selector"], json!({"matchLabels": {"app": "web"}}));
    // (In a namespace of its own: the quota would refuse the pods of the tests above.)
    c.ok(&["create", "namespace", "limited"]);
    c.ok(&[
        "create",
        "quota",
        "q",
        "--hard=pods=4,requests.cpu=1",
        "--scopes=NotBestEffort",
        "-n",
        "limited",
    ]);
    let q = c.json(&["get", "quota", "q", "-n", "limited"]);
    assert_eq!(q["spec"]["hard"], json!({"pods": "4", "requests.cpu": "1"}));
    assert_eq!(q["spec"]["scopes"], json!(["NotBestEffort"]));

    // `kubectl auth reconcile` creates, then updates with what the server stored.
    let rbac = c.write("rbac.yaml", RBAC);
    let rbac = rbac.to_str().expect("path");
    for _ in 0..2 {
        let out = c.ok(&["auth", "reconcile", "-f", rbac]);
        assert_eq!(out.matches(" reconciled").count(), 3, "{out}");
    }
    assert_eq!(
        c.json(&["get", "clusterrole", "parent"])["aggregationRule"]["clusterRoleSelectors"][1],
        json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["x"]}]})
    );
    assert_eq!(
        get(&["get", "rolebinding", "deployers"])["subjects"][1],
        json!({"kind": "ServiceAccount", "name": "bot", "namespace": "team"})
    );

    raw_protobuf_bodies(&c);
}

const RBAC: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: parent}
aggregationRule:
  clusterRoleSelectors:
  - matchLabels: {agg: "true"}
  - matchExpressions: [{key: tier, operator: In, values: [x]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: deployer, namespace: team}
rules: [{apiGroups: [apps], resources: [deployments], resourceNames: [web], verbs: [get, update]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: deployers, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: deployer}
subjects:
- {kind: User, name: al, apiGroup: rbac.authorization.k8s.io}
- {kind: ServiceAccount, name: bot, namespace: team}
"#;

/// Bodies of kinds kubectl never sends in protobuf (what client-go programs send), written
/// here field by field: a CustomResourceDefinition (whose schema then validates), a
/// Deployment's Scale, a Lease (microsecond times) and a NetworkPolicy are stored as sent;
/// a field the tables do not know is refused with 415 naming the message and the field
/// number, and stores nothing.
fn raw_protobuf_bodies(c: &Cluster) {
    let meta = |name: &[u8]| proto(1, &[proto(1, name), proto(3, b"team")].concat());
    let renew = [varint(1, 1_700_000_000), varint(2, 1_500_000)].concat();
    let spec = [proto(1, b"node-a"), varint(2, 15), proto(4, &renew)].concat();
    let lease = [meta(b"lock"), proto(2, &spec)].concat();
    let selector = proto(1, &proto(1, &[proto(1, b"app"), proto(2, b"web")].concat()));
    let port =
        [proto(1, b"TCP"), proto(2, &[varint(1, 0), varint(2, 8080)].concat()), varint(3, 9090)]
            .concat();
    let rule = proto(1, &port);
    let spec = [selector, proto(2, &rule), proto(4, b"Ingress")].concat();
    let policy = [meta(b"web"), proto(2, &spec)].concat();
    // Pod { metadata { name: "odd" }, spec { containers [{ name: "c", field 99: "x" }] } }
    let container = [proto(1, b"c"), proto(99, b"x")].concat();
    let pod = [meta(b"odd"), proto(2, &proto(2, &container))].concat();
    // A CustomResourceDefinition whose schema limits spec.size to 10 (a double).
    let size = [proto(5, b"integer"), double(9, 10.0)].concat();
    let entry =
        |name: &[u8], schema: &[u8]| proto(29, &[proto(1, name), proto(2, schema)].concat());
    let spec_schema = [proto(5, b"object"), entry(b"size", &size)].concat();
    let schema = [proto(5, b"object"), entry(b"spec", &spec_schema)].concat();
    let version =
        [proto(1, b"v1"), varint(2, 1), varint(3, 1), proto(4, &proto(1, &schema))].concat();
    let names =
        [proto(1, b"widgets"), proto(2, b"widget"), proto(4, b"Widget"), proto(5, b"WidgetList")]
            .concat();
    let crd_spec =
        [proto(1, b"example.com"), proto(3, &names), proto(4, b"Namespaced"), proto(7, &version)]
            .concat();
    let crd = [proto(1, &proto(1, b"widgets.example.com")), proto(2, &crd_spec)].concat();
    // Scale { metadata, spec { replicas } } to 2, then to 0 (a zero that must stay).
    let scale = |n: u64| [meta(b"web"), proto(2, &varint(1, n))].concat();
    let scales = "/apis/apps/v1/namespaces/team/deployments/web/scale";
    let sent = [
        (
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            crd,
        ),
        (scales, "autoscaling/v1", "Scale", scale(2)),
        (scales, "autoscaling/v1", "Scale", scale(0)),
        (
            "/apis/coordination.k8s.io/v1/namespaces/team/leases",
            "coordination.k8s.io/v1",
            "Lease",
            lease,
        ),
        (
            "/apis/networking.k8s.io/v1/namespaces/team/networkpolicies",
            "networking.k8s.io/v1",
            "NetworkPolicy",
            policy,
        ),
        ("/api/v1/namespaces/team/pods", "v1", "Pod", pod),
    ];
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let replies: Vec<(u16, Value)> = rt.block_on(async {
        let mut conn = admin(c).await;
        let mut out = Vec::new();
        for (path, api_version, kind, object) in sent {
            let type_meta = [proto(1, api_version.as_bytes()), proto(2, kind.as_bytes())].concat();
            let body = [b"k8s\0".to_vec(), proto(1, &type_meta), proto(2, &object)].concat();
            let method = if kind == "Scale" { "PUT" } else { "POST" };
            let r = conn
                .request(method, path, Some("application/vnd.kubernetes.protobuf"), body)
                .await
                .expect("request");
            out.push((r.status, r.json()));
            if kind == "Scale" {
                let d = conn.get("/apis/apps/v1/namespaces/team/deployments/web").await;
                out.push((0, d.expect("get").json()["spec"]["replicas"].clone()));
            }
        }
        out
    });
    assert_eq!(replies[0].0, 201, "{}", replies[0].1);
    let crd = c.json(&["get", "crd", "widgets.example.com"]);
    let stored = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    assert_eq!(
        stored["properties"]["spec"]["properties"]["size"],
        json!({"type": "integer", "maximum": 10})
    );
    let served = || c.kubectl(&["get", "widgets", "-n", "team"]).status.success();
    assert!(eventually(Duration::from_secs(10), served), "widgets are served");
    let widget = |size: u32| {
        format!(
            "apiVersion: example.com/v1\nkind: Widget\nmetadata: {{name: w, namespace: team}}\nspec: {{size: {size}}}\n"
        )
    };
    let err = c.fails(&["apply", "-f", c.write("big.yaml", &widget(11)).to_str().expect("path")]);
    assert!(err.contains("spec.size"), "{err}");
    c.apply(&widget(10), &[]);
    let replies = &replies[1..];
    assert_eq!((replies[0].0, &replies[1].1), (200, &json!(2)), "{}", replies[0].1);
    assert_eq!((replies[2].0, &replies[3].1), (200, &json!(0)), "{}", replies[2].1);
    let replies = &replies[4..];
    assert_eq!(replies[0].0, 201, "{}", replies[0].1);
    let lease = get_in(c, &["get", "lease", "lock"]);
    assert_eq!(
        lease["spec"],
        json!({"holderIdentity": "node-a", "leaseDurationSeconds": 15,
            "renewTime": "2023-11-14T22:13:20.001500Z"})
    );
    assert_eq!(replies[1].0, 201, "{}", replies[1].1);
    assert_eq!(
        get_in(c, &["get", "networkpolicy", "web"])["spec"],
        json!({"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"],
            "ingress": [{"ports": [{"protocol": "TCP", "port": 8080, "endPort": 9090}]}]})
    );
    let (status, reply) = &replies[2];
    assert_eq!(*status, 415, "{reply}");
    let message = reply["message"].as_str().unwrap_or_default();
    assert!(message.contains("field 99 of Container"), "{reply}");
    assert!(c.fails(&["get", "pod", "odd", "-n", "team"]).contains("NotFound"));
}

fn get_in(c: &Cluster, args: &[&str]) -> Value {
    c.json(&[args, &["-n", "team"][..]].concat())
}

/// A fixed64 protobuf field holding a double.
fn double(number: u32, v: f64) -> Vec<u8> {
    let mut out = Vec::new();
    push_varint(u64::from(number << 3 | 1), &mut out);
    out.extend(v.to_le_bytes());
    out
}

/// A varint protobuf field.
fn varint(number: u32, v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    push_varint(u64::from(number << 3), &mut out);
    push_varint(v, &mut out);
    out
}

fn push_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited protobuf field.
fn proto(number: u32, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    push_varint(u64::from(number << 3 | 2), &mut out);
    push_varint(data.len() as u64, &mut out);
    out.extend_from_slice(data);
    out
}

fn base64(v: &Value) -> String {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or_default());
    String::from_utf8(raw.expect("base64")).expect("UTF-8")
}

fn base64_json(v: &Value) -> Value {
    serde_json::from_str(&base64(v)).expect("JSON")
}

/// A pod using most of what a PodSpec can carry (the optional configuration it names need
/// not exist). Quantities are in canonical form, as protobuf carries them.
const RICH_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: src
  labels: {app: src}
  annotations: {note: hi}
spec:
  terminationGracePeriodSeconds: 5
  activeDeadlineSeconds: 3600
  dnsPolicy: None
  dnsConfig:
    nameservers: [1.1.1.1]
    searches: [example.com]
    options: [{name: ndots, value: "2"}, {name: edns0}]
  hostAliases: [{ip: 10.0.0.9, hostnames: [db.local, db]}]
  hostname: box
  subdomain: sub
  nodeSelector: {kubernetes.io/os: linux}
  enableServiceLinks: false
  automountServiceAccountToken: true
  os: {name: linux}
  shareProcessNamespace: true
  readinessGates: [{conditionType: example.com/ready}]
  overhead: {cpu: 10m, memory: 16Mi}
  securityContext:
    runAsUser: 1000
    runAsGroup: 3000
    fsGroup: 2000
    fsGroupChangePolicy: OnRootMismatch
    supplementalGroups: [4000, 5000]
    runAsNonRoot: true
    seLinuxOptions: {level: "s0:c123,c456"}
    seccompProfile: {type: RuntimeDefault}
    appArmorProfile: {type: RuntimeDefault}
    sysctls: [{name: net.ipv4.ip_local_port_range, value: "32768 60999"}]
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions: [{key: kubernetes.io/os, operator: In, values: [linux]}]
      preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 10
        preference: {matchExpressions: [{key: zone, operator: Exists}]}
    podAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 5
        podAffinityTerm: {labelSelector: {matchLabels: {app: cache}}, topologyKey: kubernetes.io/hostname}
    podAntiAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
      - labelSelector: {matchExpressions: [{key: app, operator: In, values: [other]}]}
        topologyKey: kubernetes.io/hostname
        namespaces: [default]
  tolerations:
  - {key: dedicated, operator: Equal, value: debug, effect: NoSchedule}
  - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 30}
  topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector: {matchLabels: {app: src}}
    minDomains: 1
    nodeAffinityPolicy: Honor
    nodeTaintsPolicy: Ignore
    matchLabelKeys: [pod-template-hash]
  volumes:
  - {name: scratch, emptyDir: {medium: Memory, sizeLimit: 64Mi}}
  - {name: host, hostPath: {path: /tmp, type: Directory}}
  - {name: cfg, configMap: {name: cfg, items: [{key: a, path: a.txt, mode: 256}], defaultMode: 420, optional: true}}
  - {name: sec, secret: {secretName: sec, defaultMode: 256, optional: true}}
  - name: proj
    projected:
      defaultMode: 420
      sources:
      - serviceAccountToken: {audience: vault, expirationSeconds: 3600, path: vault-token}
      - downwardAPI: {items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}, {path: cpu, resourceFieldRef: {containerName: app, resource: limits.cpu, divisor: 1m}}]}
      - configMap: {name: cfg, optional: true}
      - secret: {name: sec, items: [{key: k, path: k}], optional: true}
  - {name: claim, persistentVolumeClaim: {claimName: data, readOnly: true}}
  - name: info
    downwardAPI: {defaultMode: 420, items: [{path: name, fieldRef: {apiVersion: v1, fieldPath: metadata.name}}]}
  - name: cache
    ephemeral:
      volumeClaimTemplate:
        metadata: {labels: {kind: cache}}
        spec:
          accessModes: [ReadWriteOnce]
          storageClassName: local
          resources: {requests: {storage: 1Gi}}
  - name: driver
    csi:
      driver: csi.example.com
      readOnly: true
      volumeAttributes: {size: small}
      nodePublishSecretRef: {name: sec}
  initContainers:
  - name: init
    image: busybox
    command: [sh, -c, "true"]
    restartPolicy: Always
  containers:
  - name: app
    image: busybox
    command: [sh, -c]
    args: ["sleep 3600"]
    workingDir: /work
    ports:
    - {name: http, containerPort: 8080, protocol: TCP}
    - {containerPort: 9090, hostPort: 19090, protocol: UDP, hostIP: 127.0.0.1}
    env:
    - {name: PLAIN, value: x}
    - {name: NODE, valueFrom: {fieldRef: {apiVersion: v1, fieldPath: spec.nodeName}}}
    - {name: CPU, valueFrom: {resourceFieldRef: {containerName: app, resource: limits.cpu, divisor: 1m}}}
    - {name: CM, valueFrom: {configMapKeyRef: {name: cfg, key: a, optional: true}}}
    - {name: SEC, valueFrom: {secretKeyRef: {name: sec, key: k, optional: true}}}
    envFrom:
    - {prefix: CFG_, configMapRef: {name: cfg, optional: true}}
    - {secretRef: {name: sec, optional: true}}
    resources:
      requests: {cpu: 100m, memory: 64Mi}
      limits: {cpu: 500m, memory: 128Mi}
    resizePolicy: [{resourceName: cpu, restartPolicy: NotRequired}]
    volumeMounts:
    - {name: scratch, mountPath: /scratch}
    - {name: host, mountPath: /host, readOnly: true, mountPropagation: HostToContainer}
    - {name: cfg, mountPath: /cfg, subPath: a.txt}
    - {name: info, mountPath: /info, subPathExpr: "$(NODE)"}
    livenessProbe:
      exec: {command: [cat, /tmp/ok]}
      initialDelaySeconds: 5
      periodSeconds: 10
      timeoutSeconds: 2
      failureThreshold: 4
      successThreshold: 1
      terminationGracePeriodSeconds: 7
    readinessProbe:
      httpGet: {path: /ready, port: http, scheme: HTTP, httpHeaders: [{name: X-Probe, value: "1"}]}
    startupProbe:
      tcpSocket: {port: 8080}
      failureThreshold: 30
    lifecycle:
      postStart: {exec: {command: [sh, -c, "echo hi"]}}
      preStop: {sleep: {seconds: 2}}
    terminationMessagePath: /tmp/term
    terminationMessagePolicy: FallbackToLogsOnError
    imagePullPolicy: IfNotPresent
    securityContext:
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      runAsUser: 1001
      capabilities: {add: [NET_BIND_SERVICE], drop: [ALL]}
      seccompProfile: {type: Localhost, localhostProfile: profiles/audit.json}
      seLinuxOptions: {user: system_u, role: system_r, type: spc_t, level: s0}
      procMount: Default
    stdin: true
    tty: true
  - name: grpc
    image: busybox
    readinessProbe:
      grpc: {port: 9000, service: health}
    lifecycle:
      postStart: {httpGet: {path: /started, port: 8080, host: 127.0.0.1}}
      preStop: {tcpSocket: {port: 8080}}
    volumeDevices: [{name: claim, devicePath: /dev/xvda}]
"#;

/// Whether `stored` holds everything `sent` holds (the server may add defaults).
fn holds(stored: &Value, sent: &Value) -> bool {
    match (stored, sent) {
        (Value::Object(s), Value::Object(w)) => {
            w.iter().all(|(k, v)| s.get(k).is_some_and(|have| holds(have, v)))
        }
        (Value::Array(s), Value::Array(w)) => w.iter().all(|v| s.iter().any(|have| holds(have, v))),
        _ => stored == sent,
    }
}

/// The name of the pod `kubectl debug` says it created.
fn debug_pod(out: &std::process::Output) -> String {
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "kubectl debug: {text}");
    let after = text.split("Creating debugging pod ").nth(1).unwrap_or_else(|| panic!("{text}"));
    after.split_whitespace().next().unwrap_or_default().to_owned()
}

/// `kubectl debug` node pods under every profile, a `--copy-to` copy of a pod that uses
/// most PodSpec fields, `kubectl run --overrides` and `kubectl create job --from` a CronJob
/// with that spec, and `kubectl drain`.
fn debug_copy_run_and_drain(b: Backend) {
    let _dog = watchdog("debug_copy_run_and_drain", Duration::from_secs(150));
    let c = Cluster::new(b);
    let _nodes = SimNodes::start(&c, "dbg", 1, &[]);

    // Node debugging pods: the profile decides host namespaces, the host's root and the
    // container's security context.
    let on_host = json!({"hostPID": true, "hostIPC": true, "hostNetwork": true});
    let root = json!([{"name": "host-root", "hostPath": {"path": "/"}}]);
    let mount = json!([{"name": "host-root", "mountPath": "/host"}]);
    let none = Value::Null;
    let restricted = json!({"runAsNonRoot": true, "allowPrivilegeEscalation": false,
        "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}});
    let netadmin = json!({"capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}});
    let privileged = json!({"privileged": true});
    let cases = [
        ("legacy", true, true, &none),
        ("general", true, true, &none),
        ("baseline", false, false, &none),
        ("restricted", false, false, &restricted),
        ("netadmin", true, false, &netadmin),
        ("sysadmin", true, true, &privileged),
    ];
    for (profile, host, host_root, security) in cases {
        let out = c.kubectl(&[
            "debug",
            "node/dbg-0",
            "-it",
            "--attach=false",
            "--image=busybox",
            &format!("--profile={profile}"),
        ]);
        let name = debug_pod(&out);
        let spec = c.json(&["get", "pod", &name])["spec"].clone();
        assert_eq!(spec["nodeName"], "dbg-0", "{profile}");
        assert_eq!(spec["tolerations"], json!([{"operator": "Exists"}]), "{profile}");
        let ns = json!({"hostPID": spec["hostPID"], "hostIPC": spec["hostIPC"],
            "hostNetwork": spec["hostNetwork"]});
        assert_eq!(ns == on_host, host, "{profile}: {spec}");
        let debugger = &spec["containers"][0];
        assert_eq!(
            (debugger["stdin"].as_bool(), debugger["tty"].as_bool()),
            (Some(true), Some(true))
        );
        assert_eq!(&debugger["securityContext"], security, "{profile}");
        let volumes: Vec<Value> = spec["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| v.get("hostPath").is_some())
            .cloned()
            .collect();
        assert_eq!(Value::Array(volumes) == root, host_root, "{profile}: {spec}");
        let mounts: Vec<Value> = debugger["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["name"] == "host-root")
            .cloned()
            .collect();
        assert_eq!(Value::Array(mounts) == mount, host_root, "{profile}: {spec}");
    }

    // A copy of a pod has its spec, field for field, plus the debugging container.
    c.apply(RICH_POD, &[]);
    let scheduled = |name: &str| c.json(&["get", "pod", name])["spec"]["nodeName"] == "dbg-0";
    assert!(eventually(Duration::from_secs(20), || scheduled("src")), "src is scheduled");
    c.ok(&["debug", "src", "--copy-to=copy", "--image=busybox", "--profile=legacy", "--", "true"]);
    let mut source = c.json(&["get", "pod", "src"])["spec"].clone();
    let mut copy = c.json(&["get", "pod", "copy"])["spec"].clone();
    let containers = copy["containers"].as_array_mut().expect("containers");
    let debugger = containers.pop().expect("the debugging container");
    assert_eq!(
        (debugger["image"].as_str(), debugger["command"].clone()),
        (Some("busybox"), json!(["true"]))
    );
    for spec in [&mut source, &mut copy] {
        spec.as_object_mut().expect("spec").remove("nodeName");
    }
    assert_eq!(copy, source);

    // `kubectl run --overrides` (sent as JSON) with the same spec.
    let file = c.write("rich.yaml", RICH_POD);
    let file = file.to_str().expect("path");
    let sent = c.json(&["create", "--dry-run=client", "-f", file])["spec"].clone();
    let overrides = json!({"apiVersion": "v1", "spec": sent}).to_string();
    c.ok(&[
        "run",
        "over",
        "--image=busybox",
        "--restart=Never",
        "--env=A=B",
        "--labels=x=y",
        "--port=80",
        &format!("--overrides={overrides}"),
    ]);
    let over = c.json(&["get", "pod", "over"]);
    assert_eq!(over["metadata"]["labels"], json!({"x": "y"}));
    assert!(holds(&over["spec"], &sent), "{}", over["spec"]);

    // A Job from a CronJob carries the CronJob's whole job template in protobuf (no
    // parallelism: no pods).
    let mut pod = sent.clone();
    pod["restartPolicy"] = json!("Never");
    let template = json!({
        "parallelism": 0,
        "completions": 2,
        "completionMode": "Indexed",
        "activeDeadlineSeconds": 600,
        "ttlSecondsAfterFinished": 100,
        "backoffLimitPerIndex": 1,
        "maxFailedIndexes": 1,
        "podReplacementPolicy": "Failed",
        "podFailurePolicy": {"rules": [
            {"action": "FailJob", "onExitCodes": {"containerName": "app", "operator": "In", "values": [1, 42]}},
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
        ]},
        "successPolicy": {"rules": [{"succeededIndexes": "0", "succeededCount": 1}]},
        "template": {"metadata": {"labels": {"app": "rich"}}, "spec": pod},
    });
    let cron = json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "rich"},
        "spec": {"schedule": "0 0 1 1 *", "suspend": true, "jobTemplate": {"spec": template}}});
    c.apply(&cron.to_string(), &[]);
    c.ok(&["create", "job", "from-rich", "--from=cronjob/rich"]);
    let stored = c.json(&["get", "cronjob", "rich"])["spec"]["jobTemplate"]["spec"].clone();
    let job = c.json(&["get", "job", "from-rich"])["spec"].clone();
    assert!(holds(&job, &template), "{job}");
    assert_eq!(job["template"]["spec"], stored["template"]["spec"]);

    assert!(eventually(Duration::from_secs(20), || scheduled("copy")), "copy is scheduled");
    // Draining the node evicts every pod on it (protobuf Evictions with DeleteOptions).
    let drained = c.ok(&[
        "drain",
        "dbg-0",
        "--force",
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--grace-period=1",
        "--timeout=60s",
    ]);
    assert!(
        drained.contains("pod/copy evicted") && drained.contains("node/dbg-0 drained"),
        "{drained}"
    );
    assert!(c.fails(&["get", "pod", "copy"]).contains("NotFound"));
    assert_eq!(c.json(&["get", "node", "dbg-0"])["spec"]["unschedulable"], true);
}

on_both_backends!(every_create_subcommand, debug_copy_run_and_drain);
