//! A pod's service account seen from inside the pod, the way in-cluster clients use it: the
//! `KUBERNETES_SERVICE_*` variables lead to the API server through the `kubernetes` Service,
//! the mounted CA verifies it, and the mounted token carries exactly the account's RBAC
//! permissions. Debian's curl runs in a Sentry pod on `ringfence up`.

mod common;
#[path = "../images/tests/common/mod.rs"]
mod image_common;
#[path = "common/node.rs"]
mod node;

use std::path::Path;
use std::time::Duration;

use common::{Cluster, eventually};

const MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The host's address on its default route: pods reach the API server there.
fn host_address() -> String {
    let out = std::process::Command::new("ip")
        .args(["-4", "-o", "route", "get", "192.0.2.200"])
        .output()
        .expect("run ip route get");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut words = text.split_whitespace();
    words
        .by_ref()
        .find(|w| *w == "src")
        .and_then(|_| words.next())
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no source address for a default route: {text:?}"))
}

fn pod_script() -> String {
    format!(
        r#"T=$(cat {MOUNT}/token); NS=$(cat {MOUNT}/namespace)
A=https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT
get() {{ curl -sS --max-time 20 --cacert {MOUNT}/ca.crt -H "Authorization: Bearer $T" -o /tmp/body -w "%{{http_code}}" "$A$1"; }}
echo "ns=$NS"
echo "own=$(get /api/v1/namespaces/$NS/pods)"
grep -o '"name":"client"' /tmp/body | head -1
echo "other=$(get /api/v1/namespaces/default/pods)"
touch {MOUNT}/x 2>/dev/null || echo read-only
"#
    )
}

#[test]
fn a_pod_reaches_the_api_server_as_its_service_account() {
    let c = Cluster::up(&["--listen", "0.0.0.0:0", "--advertise-address", &host_address()]);
    let images = tempfile::tempdir().unwrap();
    let layout = node::busybox_image_layout_with(images.path(), &[], &[Path::new("/usr/bin/curl")]);
    node::import_layout(c.data_dir(), &layout, "client:v1");
    c.apply(
        r#"
apiVersion: v1
kind: Namespace
metadata: {name: team}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: robot, namespace: team}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-reader, namespace: team}
rules: [{apiGroups: [""], resources: [pods], verbs: [get, list]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: robot-reads, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}
subjects: [{kind: ServiceAccount, name: robot, namespace: team}]
"#,
        &[],
    );
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "client", "namespace": "team"},
        "spec": {
            "serviceAccountName": "robot",
            "restartPolicy": "Never",
            "containers": [{"name": "c", "image": "client:v1", "command": ["sh", "-c", pod_script()]}],
        },
    });
    c.apply(&pod.to_string(), &[]);
    let spec = c.json(&["get", "pod", "client", "-n", "team"])["spec"].clone();
    let volume = spec["volumes"][0]["name"].as_str().unwrap_or("").to_owned();
    assert!(volume.starts_with("kube-api-access-"), "{spec}");
    assert_eq!(spec["containers"][0]["volumeMounts"][0]["mountPath"], MOUNT, "{spec}");

    let done = eventually(Duration::from_secs(120), || {
        c.json(&["get", "pod", "client", "-n", "team"])["status"]["phase"] == "Succeeded"
    });
    let logs = c.kubectl(&["logs", "client", "-n", "team"]);
    let logs = String::from_utf8_lossy(&logs.stdout).into_owned();
    let events = c.kubectl(&["get", "events", "-n", "team"]);
    assert!(done, "the pod did not finish: {logs}\n{}", String::from_utf8_lossy(&events.stdout));
    for want in ["ns=team", "own=200", "\"name\":\"client\"", "other=403", "read-only"] {
        assert!(logs.contains(want), "{want:?} missing from the pod's output:\n{logs}");
    }

    // Opting out mounts nothing; a missing account is refused at admission.
    c.apply(
        r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "plain", "namespace": "team"},
            "spec": {"automountServiceAccountToken": false, "restartPolicy": "Never",
                     "containers": [{"name": "c", "image": "client:v1", "command": ["ls", "/var/run/secrets"]}]}}"#,
        &[],
    );
    let plain = c.json(&["get", "pod", "plain", "-n", "team"])["spec"].clone();
    assert!(plain["volumes"].as_array().is_none_or(|v| v.is_empty()), "{plain}");
    let ghost = c.write(
        "ghost.json",
        r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ghost", "namespace": "team"},
            "spec": {"serviceAccountName": "ghost", "containers": [{"name": "c", "image": "client:v1"}]}}"#,
    );
    let refused = c.fails(&["apply", "-f", ghost.to_str().unwrap()]);
    assert!(refused.contains("serviceaccount \"ghost\" not found"), "{refused}");
}
