//! A pod's service account seen from inside the pod, the way in-cluster clients use it: the
//! `KUBERNETES_SERVICE_*` variables lead to the API server through the `kubernetes` Service,
//! the mounted CA verifies it, and the mounted token carries exactly the account's RBAC
//! permissions. Debian's curl and the official Python client (`load_incluster_config()`) run
//! in Sentry pods on `ringfence up`.

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

/// An image with Debian's Python and the official `kubernetes` client from the venv
/// `scripts/setup` fills (without what an in-cluster client never imports).
fn python_client_image(dir: &Path) -> std::path::PathBuf {
    let root = common::sentry::busybox_rootfs(&dir.join("root"));
    common::sentry::with_libraries(&root, Path::new("/usr/bin/python3.11"));
    let copy = |from: &Path, to: &Path| {
        std::fs::create_dir_all(to).unwrap();
        let st = std::process::Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap();
        assert!(st.success(), "cp -a {}", from.display());
    };
    copy(Path::new("/usr/lib/python3.11"), &root.join("usr/lib"));
    let packages = root.join("usr/lib/python3/dist-packages");
    let venv = common::python::interpreter().parent().unwrap().parent().unwrap().to_owned();
    let site = venv.join("lib/python3.11/site-packages");
    let unused = ["grpc", "grpc_tools", "pip", "setuptools", "aiohttp"];
    for entry in std::fs::read_dir(&site).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !unused.contains(&name.as_str()) && !name.ends_with(".dist-info") {
            copy(&path, &packages);
        }
    }
    // The asyncio flavour of the client is a second copy of it.
    std::fs::remove_dir_all(packages.join("kubernetes/aio")).unwrap();
    // The shared libraries of every extension module.
    let find =
        std::process::Command::new("find").arg(&root).args(["-name", "*.so*"]).output().unwrap();
    for so in String::from_utf8_lossy(&find.stdout).lines() {
        let ldd = std::process::Command::new("ldd").arg(so).output().unwrap();
        for lib in
            String::from_utf8_lossy(&ldd.stdout).split_whitespace().filter(|w| w.starts_with('/'))
        {
            let dest = root.join(lib.trim_start_matches('/'));
            if !dest.exists() {
                std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
                std::fs::copy(lib, &dest).unwrap();
            }
        }
    }
    node::image_layout_of(dir, &root)
}

const PYTHON_CLIENT: &str = r#"
from kubernetes import client, config
config.load_incluster_config()
v1 = client.CoreV1Api()
ns = open("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read()
print("python listed", sorted(p.metadata.name for p in v1.list_namespaced_pod(ns).items))
try:
    v1.list_namespaced_pod("default")
    print("python other=200")
except client.exceptions.ApiException as e:
    print("python other=%d" % e.status)
"#;

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
    let python = python_client_image(&images.path().join("python"));
    node::import_layout(c.data_dir(), &python, "python-client:v1");
    let py = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "py", "namespace": "team"},
        "spec": {
            "serviceAccountName": "robot",
            "restartPolicy": "Never",
            "containers": [{"name": "c", "image": "python-client:v1",
                "command": ["/bin/python3.11", "-c", PYTHON_CLIENT],
                "env": [{"name": "PYTHONPATH", "value": "/usr/lib/python3/dist-packages"}]}],
        },
    });
    c.apply(&py.to_string(), &[]);
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
    // The official Python client's load_incluster_config(), unchanged.
    let done = eventually(Duration::from_secs(180), || {
        let phase = &c.json(&["get", "pod", "py", "-n", "team"])["status"]["phase"];
        phase == "Succeeded" || phase == "Failed"
    });
    let logs = c.kubectl(&["logs", "py", "-n", "team"]);
    let logs = String::from_utf8_lossy(&logs.stdout).into_owned();
    assert!(done, "the Python client did not finish: {logs}");
    assert!(logs.contains("python listed ['client', 'py']"), "{logs}");
    assert!(logs.contains("python other=403"), "{logs}");

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
