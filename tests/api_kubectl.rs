//! The real kubectl against `ringfence server`: each test starts its own server and asserts
//! the stored state after every command.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Output, Stdio};
use std::time::Duration;

use common::{Backend, Cluster, DEPLOYMENT, eventually};

fn discovery_version_health_and_explain(b: Backend) {
    let c = Cluster::new(b);
    let v = c.ok(&["version"]);
    assert!(v.contains("Server Version: v1.32"), "{v}");
    let resources = c.ok(&["api-resources"]);
    for r in [
        "deployments",
        "daemonsets",
        "horizontalpodautoscalers",
        "leases",
        "runtimeclasses",
        "endpointslices",
        "clusterrolebindings",
    ] {
        assert!(resources.contains(r), "api-resources lacks {r}: {resources}");
    }
    assert_eq!(c.ok(&["get", "--raw", "/healthz"]), "ok");
    assert_eq!(c.ok(&["get", "--raw", "/readyz"]), "ok");
    assert_eq!(c.ok(&["get", "--raw", "/livez"]), "ok");
    let metrics = c.ok(&["get", "--raw", "/metrics"]);
    assert!(metrics.contains("apiserver_request_total{"), "{metrics}");
    let ns = c.ok(&["get", "namespaces"]);
    for n in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(ns.contains(n), "{ns}");
    }
    let explain = c.ok(&["explain", "deployment.spec"]);
    assert!(explain.contains("DeploymentSpec") && explain.contains("replicas"), "{explain}");
    let explain = c.ok(&["explain", "pods.spec.containers.image"]);
    assert!(explain.contains("image"), "{explain}");

    // OpenAPI v2, which kubectl reads in protobuf: the same schemas.
    let v2 = ["--output=plaintext-openapiv2"];
    let explain = c.ok(&[&["explain", "deployment.spec"][..], &v2].concat());
    assert!(explain.contains("KIND:") && explain.contains("Deployment"), "{explain}");
    assert!(explain.contains("replicas\t<integer>"), "{explain}");
    assert!(explain.contains("template\t<Object> -required-"), "{explain}");
    let explain = c.ok(&[&["explain", "pods.spec.containers.resources.limits"][..], &v2].concat());
    assert!(
        explain.contains("map[string]Quantity") || explain.contains("<map[string]"),
        "{explain}"
    );
    let explain = c.ok(&[&["explain", "rc.spec.selector"][..], &v2].concat());
    assert!(explain.contains("ReplicationController"), "{explain}");
    let doc: serde_json::Value =
        serde_json::from_str(&c.ok(&["get", "--raw", "/openapi/v2"])).unwrap();
    assert_eq!(doc["swagger"], "2.0");
    assert_eq!(
        doc["definitions"]["io.k8s.api.core.v1.Pod"]["x-kubernetes-group-version-kind"][0]["kind"],
        "Pod"
    );
}

fn apply_get_update_and_strict_validation(b: Backend) {
    let c = Cluster::new(b);
    let file = c.write("web.yaml", DEPLOYMENT);
    let f = file.to_str().unwrap();
    assert!(c.ok(&["apply", "-f", f]).contains("deployment.apps/web created"));
    let d = c.json(&["get", "deployment", "web"]);
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(d["metadata"]["generation"], 1);
    assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate", "defaulted");
    assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always", "defaulted");
    assert!(d["metadata"]["uid"].as_str().is_some_and(|u| u.len() == 36));

    // Update of a changed file.
    c.write("web.yaml", &DEPLOYMENT.replace("replicas: 2", "replicas: 3"));
    assert!(c.ok(&["apply", "-f", f]).contains("configured"));
    let d2 = c.json(&["get", "deployment", "web"]);
    assert_eq!(
        (d2["spec"]["replicas"].as_i64(), d2["metadata"]["generation"].as_i64()),
        (Some(3), Some(2))
    );
    assert!(c.ok(&["apply", "-f", f]).contains("unchanged"));

    let table = c.ok(&["get", "deployments"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    assert!(table.contains("web") && table.contains("0/3"), "{table}");
    let wide = c.ok(&["get", "deployments", "-o", "wide"]);
    assert!(
        wide.contains("CONTAINERS") && wide.contains("nginx:1.25") && wide.contains("app=web"),
        "{wide}"
    );
    let yaml = c.ok(&["get", "deployment", "web", "-o", "yaml"]);
    assert!(yaml.contains("replicas: 3") && yaml.contains("kind: Deployment"), "{yaml}");

    // An unknown field is refused (kubectl asks for strict validation) and changes nothing.
    c.write("bad.yaml", &DEPLOYMENT.replace("replicas: 2", "replicas: 9\n  colour: blue"));
    let err = c.fails(&["apply", "-f", c.data_dir().join("bad.yaml").to_str().unwrap()]);
    assert!(err.contains("unknown field \"spec.colour\""), "{err}");
    // (The controllers may have written the status meanwhile: compare what the apply would
    // have changed.)
    let after = c.json(&["get", "deployment", "web"]);
    assert_eq!(after["spec"], d2["spec"]);
    assert_eq!(after["metadata"]["generation"], d2["metadata"]["generation"]);

    // Services get a cluster IP from the range.
    c.apply("apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80}]\n", &[]);
    let svc = c.json(&["get", "service", "web"]);
    let ip = svc["spec"]["clusterIP"].as_str().unwrap();
    assert!(ip.starts_with("10.96.") && ip != "10.96.0.1", "{ip}");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 80);

    // What Kubernetes validates: a cron schedule, an autoscaler's bounds (422, nothing stored).
    let cron = "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: nightly}\nspec:\n  schedule: \"61 * * * *\"\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers: [{name: c, image: busybox}]\n";
    c.write("cron.yaml", cron);
    let err = c.fails(&["apply", "-f", c.data_dir().join("cron.yaml").to_str().unwrap()]);
    assert!(err.contains("spec.schedule") && err.contains("is invalid"), "{err}");
    assert!(c.fails(&["get", "cronjob", "nightly"]).contains("NotFound"));
    let hpa = "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: web}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n  minReplicas: 5\n  maxReplicas: 2\n";
    c.write("hpa.yaml", hpa);
    let err = c.fails(&["apply", "-f", c.data_dir().join("hpa.yaml").to_str().unwrap()]);
    assert!(err.contains("spec.minReplicas"), "{err}");
    // Immutable fields: a binding's roleRef, a Deployment's selector.
    c.apply("apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: rb}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}\nsubjects: [{kind: User, name: alice}]\n", &[]);
    let other =
        r#"{"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"admin"}}"#;
    let err = c.fails(&["patch", "rolebinding", "rb", "--type=merge", "-p", other]);
    assert!(err.contains("roleRef") && err.contains("immutable"), "{err}");
    assert_eq!(c.json(&["get", "rolebinding", "rb"])["roleRef"]["name"], "reader");
    let selector = r#"{"spec":{"selector":{"matchLabels":{"app":"web","tier":"x"}},"template":{"metadata":{"labels":{"app":"web","tier":"x"}}}}}"#;
    let err = c.fails(&["patch", "deployment", "web", "--type=merge", "-p", selector]);
    assert!(err.contains("spec.selector") && err.contains("immutable"), "{err}");
}

fn watch_sees_a_change(b: Backend) {
    let c = Cluster::new(b);
    c.apply(DEPLOYMENT, &[]);
    let mut watcher = c
        .kubectl_cmd()
        .args(["get", "deployments", "-w", "--request-timeout=20s"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watcher.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("NAME"), "{first}");
    assert!(lines.next().unwrap().unwrap().contains("0/2"));
    c.ok(&["scale", "deployment", "web", "--replicas=5"]);
    // The deployment controller may report status in between; the scale shows up next.
    let changed = lines.map_while(Result::ok).find(|l| l.contains("/5"));
    assert!(
        changed.as_deref().is_some_and(|l| l.contains("web") && l.contains("0/5")),
        "{changed:?}"
    );
    let _ = watcher.kill();
    let _ = watcher.wait();
}

fn scale_label_annotate_edit_patch_describe(b: Backend) {
    let c = Cluster::new(b);
    c.apply(DEPLOYMENT, &[]);
    assert!(c.ok(&["scale", "deployment", "web", "--replicas=4"]).contains("scaled"));
    assert_eq!(c.json(&["get", "deployment", "web"])["spec"]["replicas"], 4);
    c.ok(&["label", "deployment", "web", "tier=front"]);
    c.ok(&["annotate", "deployment", "web", "owner=team-a"]);
    let d = c.json(&["get", "deployment", "web"]);
    assert_eq!(d["metadata"]["labels"]["tier"], "front");
    assert_eq!(d["metadata"]["annotations"]["owner"], "team-a");
    assert_eq!(
        c.ok(&["get", "deployments", "-l", "tier=front", "-o", "name"]).trim(),
        "deployment.apps/web"
    );
    assert_eq!(c.ok(&["get", "deployments", "-l", "tier!=front", "-o", "name"]).trim(), "");

    let out = c
        .kubectl_cmd()
        .env("KUBE_EDITOR", "sed -i s/replicas:.4/replicas:\\ 6/")
        .args(["edit", "deployment", "web"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(c.json(&["get", "deployment", "web"])["spec"]["replicas"], 6);

    c.ok(&["patch", "deployment", "web", "--type", "merge", "-p", r#"{"spec":{"replicas":1}}"#]);
    assert_eq!(c.json(&["get", "deployment", "web"])["spec"]["replicas"], 1);
    c.ok(&[
        "patch",
        "deployment",
        "web",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/spec/replicas","value":2}]"#,
    ]);
    assert_eq!(c.json(&["get", "deployment", "web"])["spec"]["replicas"], 2);
    c.ok(&[
        "patch", "deployment", "web", "--type", "strategic", "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.27"},{"name":"side","image":"busybox"}]}}}}"#,
    ]);
    let cs =
        c.json(&["get", "deployment", "web"])["spec"]["template"]["spec"]["containers"].clone();
    assert_eq!(
        (cs[0]["name"].as_str(), cs[0]["image"].as_str()),
        (Some("nginx"), Some("nginx:1.27"))
    );
    assert_eq!(cs[0]["ports"][0]["containerPort"], 80, "merged by name, not replaced");
    assert_eq!(cs[1]["name"], "side");

    let describe = c.ok(&["describe", "deployment", "web"]);
    for want in [
        "Name:                   web",
        "Replicas:",
        "StrategyType:           RollingUpdate",
        "tier=front",
        "side:",
    ] {
        assert!(describe.contains(want), "describe lacks {want:?}:\n{describe}");
    }
}

fn delete_cascades_to_owned_objects(b: Backend) {
    let c = Cluster::new(b);
    let file = c.write("web.yaml", DEPLOYMENT);
    c.ok(&["apply", "-f", file.to_str().unwrap()]);
    let uid = c.json(&["get", "deployment", "web"])["metadata"]["uid"].as_str().unwrap().to_owned();
    c.apply(
        &format!(
            "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: web-1\n  ownerReferences: [{{apiVersion: apps/v1, kind: Deployment, name: web, uid: {uid}, controller: true}}]\nspec:\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec: {{containers: [{{name: c, image: busybox}}]}}\n"
        ),
        &[],
    );
    c.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: keep}\ndata: {a: b}\n", &[]);
    assert!(c.ok(&["delete", "-f", file.to_str().unwrap()]).contains("deleted"));
    assert!(c.fails(&["get", "deployment", "web"]).contains("NotFound"));
    assert!(
        eventually(Duration::from_secs(10), || c
            .ok(&["get", "replicasets", "-o", "name"])
            .trim()
            .is_empty()),
        "the owned ReplicaSet was garbage-collected"
    );
    assert_eq!(c.ok(&["get", "configmap", "keep", "-o", "name"]).trim(), "configmap/keep");
}

fn server_side_apply_and_restricted_token(b: Backend) {
    let c = Cluster::new(b);
    assert!(c.apply(DEPLOYMENT, &["--server-side"]).contains("serverside-applied"));
    assert_eq!(c.json(&["get", "deployment", "web"])["spec"]["replicas"], 2);

    std::fs::write(c.data_dir().join("tokens.csv"), "tok-alice,alice,1001,\"devs\"\n").unwrap();
    c.apply(
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-reader, namespace: default}
rules: [{apiGroups: [""], resources: [pods], verbs: [get, list, watch]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: alice-read, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}]
"#,
        &[],
    );
    let can = |args: &[&str]| {
        String::from_utf8_lossy(&c.kubectl_as_token("tok-alice", args).stdout).trim().to_owned()
    };
    assert_eq!(can(&["auth", "can-i", "list", "pods", "-n", "default"]), "yes");
    assert_eq!(can(&["auth", "can-i", "delete", "pods", "-n", "default"]), "no");
    assert_eq!(can(&["auth", "can-i", "list", "pods", "-n", "kube-system"]), "no");
    let denied = c.kubectl_as_token("tok-alice", &["get", "deployments"]);
    assert!(String::from_utf8_lossy(&denied.stderr).contains("Forbidden"));
    let anon = c.kubectl_as_token("wrong-token", &["get", "pods"]);
    assert!(String::from_utf8_lossy(&anon.stderr).contains("Unauthorized"));
    assert_eq!(c.ok(&["auth", "can-i", "delete", "nodes"]).trim(), "yes");

    // TokenReview: the server's own authenticator says whose a token is.
    let review = |token: &str, audiences: &str| -> serde_json::Value {
        let yaml = format!(
            "apiVersion: authentication.k8s.io/v1\nkind: TokenReview\nspec: {{token: {token}{audiences}}}\n"
        );
        let file = c.write("review.yaml", &yaml);
        let file = file.to_str().unwrap();
        c.json(&["create", "-f", file, "--validate=false", "-o", "json"])["status"].clone()
    };
    let ok = review("tok-alice", "");
    assert_eq!(ok["authenticated"], true, "{ok}");
    assert_eq!(
        (&ok["user"]["username"], &ok["user"]["uid"]),
        (&serde_json::Value::from("alice"), &serde_json::Value::from("1001"))
    );
    let groups = ok["user"]["groups"].to_string();
    assert!(groups.contains("devs") && groups.contains("system:authenticated"), "{ok}");
    let bad = review("not-a-token", "");
    assert_eq!(bad["authenticated"], false, "{bad}");
    assert!(bad["error"].as_str().is_some_and(|e| !e.is_empty()), "{bad}");
    let elsewhere = review("tok-alice", ", audiences: [https://vault.example]");
    assert_eq!(elsewhere["authenticated"], false, "{elsewhere}");
    // Asking needs `create tokenreviews`, which alice has not.
    let file = c.write(
        "review.yaml",
        "apiVersion: authentication.k8s.io/v1\nkind: TokenReview\nspec: {token: tok-alice}\n",
    );
    let denied = c.kubectl_as_token(
        "tok-alice",
        &["create", "-f", file.to_str().unwrap(), "--validate=false"],
    );
    assert!(String::from_utf8_lossy(&denied.stderr).contains("Forbidden"), "{denied:?}");
}

/// Service accounts: every namespace gets `default` and `kube-root-ca.crt`; `kubectl create
/// token` issues signed, audience- and time-bound tokens that carry exactly the account's RBAC
/// permissions and die with the account or the pod they are bound to.
fn service_account_tokens(b: Backend) {
    let c = Cluster::new(b);
    c.ok(&["create", "namespace", "team"]);
    let ca = std::fs::read_to_string(c.data_dir().join("pki/ca.crt")).unwrap();
    for ns in ["default", "team"] {
        assert!(
            eventually(Duration::from_secs(20), || {
                c.kubectl(&["get", "serviceaccount", "default", "-n", ns]).status.success()
                    && c.kubectl(&["get", "configmap", "kube-root-ca.crt", "-n", ns])
                        .status
                        .success()
            }),
            "namespace {ns} got no default account or CA map"
        );
        let map = c.json(&["get", "configmap", "kube-root-ca.crt", "-n", ns]);
        assert_eq!(map["data"]["ca.crt"].as_str(), Some(ca.as_str()));
    }
    // A changed CA map is put back; a deleted default account comes back (a new one).
    c.ok(&[
        "patch",
        "configmap",
        "kube-root-ca.crt",
        "-n",
        "team",
        "-p",
        r#"{"data":{"ca.crt":"x"}}"#,
    ]);
    assert!(eventually(Duration::from_secs(20), || {
        c.json(&["get", "configmap", "kube-root-ca.crt", "-n", "team"])["data"]["ca.crt"].as_str()
            == Some(ca.as_str())
    }));
    let first = c.json(&["get", "sa", "default", "-n", "team"])["metadata"]["uid"].clone();
    c.ok(&["delete", "sa", "default", "-n", "team"]);
    assert!(eventually(Duration::from_secs(20), || {
        let again =
            c.kubectl(&["get", "sa", "default", "-n", "team", "-o", "jsonpath={.metadata.uid}"]);
        again.status.success()
            && !again.stdout.is_empty()
            && first != String::from_utf8_lossy(&again.stdout).as_ref()
    }));

    c.ok(&["create", "serviceaccount", "robot", "-n", "team"]);
    c.ok(&["create", "role", "pod-reader", "--verb=get,list", "--resource=pods", "-n", "team"]);
    c.ok(&[
        "create",
        "rolebinding",
        "robot-reads",
        "--role=pod-reader",
        "--serviceaccount=team:robot",
        "-n",
        "team",
    ]);
    let token = c.ok(&["create", "token", "robot", "-n", "team"]).trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    let as_robot = |token: &str, args: &[&str]| c.kubectl_as_token(token, args);
    let text = |o: Output| {
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
    };
    let ok = as_robot(&token, &["get", "pods", "-n", "team"]);
    assert!(ok.status.success(), "{}", text(ok));
    let denied = text(as_robot(&token, &["get", "pods", "-n", "default"]));
    assert!(denied.contains("User \"system:serviceaccount:team:robot\" cannot list"), "{denied}");
    let who = text(as_robot(&token, &["auth", "whoami"]));
    assert!(
        who.contains("system:serviceaccount:team:robot")
            && who.contains("system:serviceaccounts:team"),
        "{who}"
    );
    // The signature covers the claims: another account's name in them is refused.
    let parts: Vec<&str> = token.split('.').collect();
    let forged_claims = {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let claims = String::from_utf8(b64.decode(parts[1]).unwrap()).unwrap();
        b64.encode(claims.replace("team:robot", "kube-system:admin"))
    };
    let forged = format!("{}.{forged_claims}.{}", parts[0], parts[2]);
    assert!(text(as_robot(&forged, &["get", "pods", "-n", "team"])).contains("Unauthorized"));

    // Lifetimes under ten minutes are refused; audiences bind where a token is accepted.
    let short = c.fails(&["create", "token", "robot", "-n", "team", "--duration=5m"]);
    assert!(short.contains("may not specify a duration less than 10 minutes"), "{short}");
    let vault =
        c.ok(&["create", "token", "robot", "-n", "team", "--audience=https://vault.example"]);
    let vault = vault.trim();
    assert!(text(as_robot(vault, &["get", "pods", "-n", "team"])).contains("Unauthorized"));
    let review = |token: &str, audiences: &str| -> serde_json::Value {
        let yaml = format!(
            "apiVersion: authentication.k8s.io/v1\nkind: TokenReview\nspec: {{token: {token}{audiences}}}\n"
        );
        let file = c.write("review.yaml", &yaml);
        c.json(&["create", "-f", file.to_str().unwrap(), "--validate=false", "-o", "json"])["status"].clone()
    };
    let r = review(vault, ", audiences: [https://vault.example]");
    assert_eq!(r["authenticated"], true, "{r}");
    assert_eq!(r["user"]["username"], "system:serviceaccount:team:robot", "{r}");
    assert_eq!(r["audiences"], serde_json::json!(["https://vault.example"]), "{r}");
    assert_eq!(review(vault, "")["authenticated"], false);
    assert_eq!(review(&token, "")["authenticated"], true);

    // Bound to a pod: valid while the pod is.
    c.apply("apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: team}\nspec: {serviceAccountName: robot, nodeName: nowhere, containers: [{name: c, image: busybox}]}\n", &[]);
    let bound = c.ok(&[
        "create",
        "token",
        "robot",
        "-n",
        "team",
        "--bound-object-kind=Pod",
        "--bound-object-name=p",
    ]);
    let bound = bound.trim();
    assert!(as_robot(bound, &["get", "pods", "-n", "team"]).status.success());
    let r = review(bound, "");
    assert_eq!(
        r["user"]["extra"]["authentication.kubernetes.io/pod-name"],
        serde_json::json!(["p"]),
        "{r}"
    );
    let wrong = c.fails(&[
        "create",
        "token",
        "default",
        "-n",
        "team",
        "--bound-object-kind=Pod",
        "--bound-object-name=p",
    ]);
    assert!(wrong.contains("different serviceaccount"), "{wrong}");
    c.ok(&["delete", "pod", "p", "-n", "team", "--grace-period=0", "--force"]);
    assert!(text(as_robot(bound, &["get", "pods", "-n", "team"])).contains("Unauthorized"));

    // Deleting the account revokes its tokens, also once one of the same name is back.
    c.ok(&["delete", "sa", "robot", "-n", "team"]);
    assert!(text(as_robot(&token, &["get", "pods", "-n", "team"])).contains("Unauthorized"));
    c.ok(&["create", "serviceaccount", "robot", "-n", "team"]);
    assert!(text(as_robot(&token, &["get", "pods", "-n", "team"])).contains("Unauthorized"));
    let missing = c.fails(&["create", "token", "nobody", "-n", "team"]);
    assert!(missing.contains("serviceaccounts \"nobody\" not found"), "{missing}");
}

/// `kubectl --as`: impersonation is allowed only where RBAC grants `impersonate`, and the
/// request then runs with exactly the impersonated user's permissions; `auth whoami` shows it.
fn impersonation_is_checked_and_enforced(b: Backend) {
    let c = Cluster::new(b);
    std::fs::write(c.data_dir().join("tokens.csv"), "tok-bob,bob,1002,\"ops\"\n").unwrap();
    c.apply(
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: impersonate-alice}
rules:
- {apiGroups: [""], resources: [users], verbs: [impersonate], resourceNames: [alice]}
- {apiGroups: [""], resources: [groups], verbs: [impersonate], resourceNames: [devs]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: bob-impersonates}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: impersonate-alice}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: bob}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-reader, namespace: default}
rules: [{apiGroups: [""], resources: [pods], verbs: [get, list]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: alice-reads, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}]
"#,
        &[],
    );
    let bob = |args: &[&str]| c.kubectl_as_token("tok-bob", args);
    let text = |o: Output| {
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
    };
    let who = text(bob(&["auth", "whoami"]));
    assert!(who.contains("bob") && who.contains("ops"), "{who}");
    let who = text(bob(&["auth", "whoami", "--as", "alice", "--as-group", "devs"]));
    assert!(who.contains("alice") && who.contains("devs") && !who.contains("ops"), "{who}");

    // Bob reads no pods himself; as alice he may, and only what alice may.
    assert!(text(bob(&["get", "pods"])).contains("Forbidden"));
    let as_alice = bob(&["get", "pods", "--as", "alice"]);
    assert!(as_alice.status.success(), "{}", text(as_alice));
    let denied = text(bob(&["get", "deployments", "--as", "alice"]));
    assert!(denied.contains("User \"alice\" cannot list"), "{denied}");
    // Whom bob may not impersonate, and groups he may not add.
    let carol = text(bob(&["get", "pods", "--as", "carol"]));
    assert!(carol.contains("cannot impersonate resource \"users\""), "{carol}");
    let admins = text(bob(&["get", "pods", "--as", "alice", "--as-group", "system:masters"]));
    assert!(admins.contains("cannot impersonate resource \"groups\""), "{admins}");
    // Even the admin, impersonating, gets only alice's permissions.
    let admin_as_alice = c.kubectl(&["get", "deployments", "--as", "alice"]);
    assert!(!admin_as_alice.status.success(), "the admin's own permissions were used");

    // SubjectAccessReview: the same question asked about alice, by whoever may ask it.
    let review = |verb: &str| {
        format!(
            "{{\"apiVersion\": \"authorization.k8s.io/v1\", \"kind\": \"SubjectAccessReview\", \
             \"spec\": {{\"user\": \"alice\", \"resourceAttributes\": \
             {{\"namespace\": \"default\", \"verb\": \"{verb}\", \"resource\": \"pods\"}}}}}}"
        )
    };
    let list = c.write("sar-list.json", &review("list"));
    let delete = c.write("sar-delete.json", &review("delete"));
    let allowed = |f: &std::path::Path| {
        // (kubectl's client-side validation of review kinds falls back to /openapi/v2, which
        // is not served yet; the server validates the body itself.)
        let f = f.to_str().unwrap();
        c.json(&["create", "-f", f, "--validate=false"])["status"]["allowed"].clone()
    };
    assert_eq!(allowed(&list), true);
    assert_eq!(allowed(&delete), false);
    let asked_by_bob = text(bob(&["create", "-f", list.to_str().unwrap(), "--validate=false"]));
    assert!(
        asked_by_bob.contains("cannot create resource \"subjectaccessreviews\""),
        "{asked_by_bob}"
    );
}

/// Networking and storage objects a chart carries: Ingress (with status), IngressClass,
/// NetworkPolicy (objects only: enforcement is the node's), StorageClass and PodTemplate are
/// stored, listed by short name, explained, validated, and go with their namespace.
fn ingress_netpol_storageclass_and_podtemplate_objects(b: Backend) {
    let c = Cluster::new(b);
    c.ok(&["create", "namespace", "shop"]);
    c.apply(
        r#"
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: edge}
spec: {controller: example.com/edge}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: shop}
spec:
  ingressClassName: edge
  rules:
  - host: shop.example
    http:
      paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: only-frontend, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  policyTypes: [Ingress]
  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 5432}]}]
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: local}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
---
apiVersion: v1
kind: PodTemplate
metadata: {name: tmpl, namespace: shop}
template:
  metadata: {labels: {app: x}}
  spec: {containers: [{name: c, image: busybox}]}
"#,
        &[],
    );
    let ing = c.json(&["get", "ing", "web", "-n", "shop"]);
    assert_eq!(
        ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"]["number"],
        80
    );
    let names = c.ok(&["get", "netpol,podtemplates", "-n", "shop", "-o", "name"]);
    assert_eq!(
        names.lines().collect::<Vec<_>>(),
        ["networkpolicy.networking.k8s.io/only-frontend", "podtemplate/tmpl"]
    );
    assert_eq!(c.json(&["get", "sc", "local"])["volumeBindingMode"], "WaitForFirstConsumer");
    assert_eq!(c.json(&["get", "ingressclass", "edge"])["spec"]["controller"], "example.com/edge");
    assert!(c.ok(&["explain", "networkpolicy.spec.podSelector"]).contains("LabelSelector"));
    // A field that does not exist is refused, not dropped.
    let bad = c.write(
        "bad.yaml",
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: bad, namespace: shop}\nspec: {podSelector: {}, bogus: 1}\n",
    );
    let err = c.fails(&["apply", "-f", bad.to_str().unwrap()]);
    assert!(err.contains("bogus"), "{err}");
    // The namespace takes its objects with it; cluster-scoped ones stay.
    c.ok(&["delete", "namespace", "shop", "--wait=true", "--timeout=60s"]);
    let left = c.kubectl(&["get", "ing,netpol,podtemplates", "-n", "shop", "-o", "name"]);
    assert!(String::from_utf8_lossy(&left.stdout).trim().is_empty());
    assert_eq!(c.ok(&["get", "sc", "-o", "name"]).trim(), "storageclass.storage.k8s.io/local");
}

on_both_backends!(
    discovery_version_health_and_explain,
    apply_get_update_and_strict_validation,
    watch_sees_a_change,
    scale_label_annotate_edit_patch_describe,
    delete_cascades_to_owned_objects,
    server_side_apply_and_restricted_token,
    impersonation_is_checked_and_enforced,
    service_account_tokens,
    ingress_netpol_storageclass_and_podtemplate_objects
);
