//! The CRI socket driven by a gRPC client not written in Rust: gRPC C-core's Python binding
//! (`grpcio`), which sends the Unix socket's path, percent-encoded, as the HTTP/2 `:authority`.
//! Image pull/status/list/remove, pod sandbox and container lifecycle, exec sync, the user a
//! container runs as, id prefixes, idempotent removal, and a pod's sysctls (network ones on the
//! node, IPC ones inside the Sentry, where a System V IPC program lives by them).

mod common;
#[path = "../images/tests/common/mod.rs"]
mod image_common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Net, eventually, python, terminate};
use image_common::registry::{Pusher, Registry};
use image_common::{Entry, TestImage, layer};

/// Where the proto of the k8s-cri crate the project builds against is.
fn cri_proto_dir() -> PathBuf {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let manifest = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "k8s-cri")
        .and_then(|p| p["manifest_path"].as_str())
        .expect("k8s-cri in the dependency graph");
    Path::new(manifest).parent().unwrap().join("proto")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_drives_the_cri_on_its_unix_socket() {
    let registry = Registry::start("").await;
    Pusher::new(&registry).image("demo/busybox", "v1", &TestImage::busybox()).await;
    let image = format!("{}/demo/busybox:v1", registry.addr);
    // An image that runs as a named user, with its groups in its own account files.
    let accounts = layer(&[
        Entry::File(
            "etc/passwd",
            b"root:x:0:0::/root:/bin/sh\napp:x:1234:2345::/:/bin/sh\n",
            0o644,
        ),
        Entry::File("etc/group", b"root:x:0:\napp:x:2345:\nextra:x:77:app\n", 0o644),
    ]);
    let mut app = TestImage::busybox();
    app.layers.push(accounts);
    app.user = "app";
    Pusher::new(&registry).image("demo/app", "v1", &app).await;
    let app_image = format!("{}/demo/app:v1", registry.addr);
    // An image with a System V IPC program.
    let bin_dir = tempfile::tempdir().unwrap();
    let ipc_bin = bin_dir.path().join("sysv_ipc");
    common::sentry::compile("sysv_ipc", &ipc_bin, &["-static"]);
    let ipc_program = std::fs::read(&ipc_bin).unwrap();
    let mut ipc = TestImage::busybox();
    ipc.layers.push(layer(&[Entry::File("bin/sysv_ipc", &ipc_program, 0o755)]));
    Pusher::new(&registry).image("demo/ipc", "v1", &ipc).await;
    let ipc_image = format!("{}/demo/ipc:v1", registry.addr);

    let dir = tempfile::tempdir().unwrap();
    // A path like a node's, with several components for the client to percent-encode.
    let socket = dir.path().join("run/ringfence/cri.sock");
    let net = Net::unique();
    let cri = Command::new(env!("CARGO_BIN_EXE_ringfence"))
        .args(["cri", "--socket"])
        .arg(&socket)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--pod-cidr", &net.pod_cidr, "--bridge", &net.bridge])
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    // Stopped (with its sandboxes) however the test ends.
    let _cri = Terminated(cri);
    assert!(eventually(Duration::from_secs(20), || socket.exists()), "the CRI socket");

    let proto = cri_proto_dir();
    let out = tokio::task::spawn_blocking(move || {
        python::run_with(
            "cri_client.py",
            &[
                proto.as_os_str(),
                socket.as_os_str(),
                OsStr::new(&image),
                OsStr::new(&app_image),
                OsStr::new(&ipc_image),
            ],
            &[],
            Duration::from_secs(240),
        )
    })
    .await
    .unwrap();
    assert!(out.contains("all calls succeeded"), "{out}");
    assert!(out.contains("ipc sysctls seen in the sandbox: shmmax=1048576 msgmax=4096"), "{out}");
    assert!(out.contains("mqueue: sysctl fs.mqueue.msg_max is refused"), "{out}");
}

/// A child process stopped by [`terminate`] when dropped.
struct Terminated(std::process::Child);

impl Drop for Terminated {
    fn drop(&mut self) {
        terminate(&mut self.0);
    }
}
