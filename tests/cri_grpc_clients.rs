//! The CRI socket driven by a gRPC client not written in Rust: gRPC C-core's Python binding
//! (`grpcio`), which sends the Unix socket's path, percent-encoded, as the HTTP/2 `:authority`.
//! Image pull/status/list/remove, pod sandbox and container lifecycle, exec sync.

mod common;
#[path = "../images/tests/common/mod.rs"]
mod image_common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Net, eventually, python, terminate};
use image_common::TestImage;
use image_common::registry::{Pusher, Registry};

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

    let dir = tempfile::tempdir().unwrap();
    // A path like a node's, with several components for the client to percent-encode.
    let socket = dir.path().join("run/ringfence/cri.sock");
    let net = Net::unique();
    let mut cri = Command::new(env!("CARGO_BIN_EXE_ringfence"))
        .args(["cri", "--socket"])
        .arg(&socket)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--pod-cidr", &net.pod_cidr, "--bridge", &net.bridge])
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    assert!(eventually(Duration::from_secs(20), || socket.exists()), "the CRI socket");

    let proto = cri_proto_dir();
    let out = tokio::task::spawn_blocking(move || {
        python::run_with(
            "cri_client.py",
            &[proto.as_os_str(), socket.as_os_str(), OsStr::new(&image)],
            &[],
            Duration::from_secs(240),
        )
    })
    .await
    .unwrap();
    terminate(&mut cri);
    assert!(out.contains("all calls succeeded"), "{out}");
}
