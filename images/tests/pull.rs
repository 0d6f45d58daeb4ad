//! Pulling from Debian's `docker-registry` on loopback, with images pushed by the test itself.

mod common;

use std::sync::Mutex;
use std::sync::atomic::Ordering;

use common::registry::{Pusher, Registry};
use common::token::TokenService;
use common::{TestImage, desc};
use images::{Digest, ImageError, ImageStore, NoProgress, Progress};

/// Records what a pull reported.
#[derive(Default)]
struct Recorder {
    started: Mutex<Vec<(Digest, u64)>>,
    bytes: Mutex<u64>,
}

impl Progress for Recorder {
    fn started(&self, blob: &Digest, total: u64) {
        self.started.lock().unwrap().push((blob.clone(), total));
    }
    fn advanced(&self, _blob: &Digest, bytes: u64) {
        *self.bytes.lock().unwrap() += bytes;
    }
}

fn store() -> (tempfile::TempDir, ImageStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&dir.path().join("images")).unwrap();
    (dir, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_by_tag_and_digest_and_skips_stored_blobs() {
    let registry = Registry::start("").await;
    let image = TestImage::busybox();
    let manifest = Pusher::new(&registry).image("team/busybox", "v1", &image).await;
    let (_dir, store) = store();
    let reference = format!("{}/team/busybox:v1", registry.addr);

    let progress = Recorder::default();
    let info = store.pull(&reference, &progress).await.unwrap();
    assert_eq!(info.id, Digest::of(&image.config()));
    assert_eq!(info.repo_tags, std::slice::from_ref(&reference));
    let by_digest = format!("{}/team/busybox@{}", registry.addr, Digest::of(&manifest));
    assert_eq!(info.repo_digests, std::slice::from_ref(&by_digest));
    let (_, blobs) = image.manifest();
    assert_eq!(*progress.bytes.lock().unwrap(), blobs.iter().map(|b| b.len() as u64).sum::<u64>());
    assert_eq!(progress.started.lock().unwrap().len(), 2, "config and one layer");
    let root = store.rootfs(&reference).unwrap();
    let out = std::process::Command::new(root.join("bin/busybox"))
        .args(["cat", "/proc/self/comm"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(store.config(&by_digest).unwrap().cmd, ["/bin/sh"]);

    // Everything is stored: a second pull (by digest this time) downloads nothing.
    let again = Recorder::default();
    assert_eq!(store.pull(&by_digest, &again).await.unwrap().id, info.id);
    assert_eq!(*again.bytes.lock().unwrap(), 0);
    assert_eq!(store.list().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_resolves_to_its_linux_amd64_image() {
    let registry = Registry::start("").await;
    let pusher = Pusher::new(&registry);
    let amd64 = TestImage::busybox();
    let arm64 = TestImage { arch: "arm64", cmd: vec!["/bin/arm"], ..TestImage::busybox() };
    let mut entries = Vec::new();
    for (image, arch) in [(&arm64, "arm64"), (&amd64, "amd64")] {
        let m = pusher.image("multi", arch, image).await;
        let mut d = desc("application/vnd.oci.image.manifest.v1+json", &m);
        d["platform"] = serde_json::json!({ "os": "linux", "architecture": arch });
        entries.push(d);
    }
    let index = serde_json::json!({ "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries });
    let index = serde_json::to_vec(&index).unwrap();
    pusher.manifest("multi", "latest", "application/vnd.oci.image.index.v1+json", &index).await;

    let (_dir, store) = store();
    let info = store.pull(&format!("{}/multi", registry.addr), &NoProgress).await.unwrap();
    assert_eq!(info.id, Digest::of(&amd64.config()));
    assert_eq!(info.repo_digests, [format!("{}/multi@{}", registry.addr, Digest::of(&index))]);
    assert_eq!(info.repo_tags, [format!("{}/multi:latest", registry.addr)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_images_and_unreachable_registries_fail_clearly() {
    let registry = Registry::start("").await;
    let (dir, store) = store();
    let r = store.pull(&format!("{}/nothing/here:v1", registry.addr), &NoProgress).await;
    assert!(matches!(r, Err(ImageError::NotFound(_))), "{r:?}");
    let wrong = format!("{}/nothing/here@{}", registry.addr, Digest::of(b"x"));
    assert!(matches!(store.pull(&wrong, &NoProgress).await, Err(ImageError::NotFound(_))));
    drop(registry);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let r = store.pull(&format!("{closed}/x:1"), &NoProgress).await;
    assert!(matches!(r, Err(ImageError::Registry { .. })), "{r:?}");
    assert!(store.list().unwrap().is_empty());
    assert!(common::tree(&dir.path().join("images/tmp")).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_auth_is_answered() {
    let tokens = TokenService::start().await;
    let auth_dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(&tokens.registry_auth(auth_dir.path())).await;
    // Anonymous requests are refused with a bearer challenge.
    let resp = reqwest::get(format!("http://{}/v2/", registry.addr)).await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer realm="));

    let mut pusher = Pusher::new(&registry);
    pusher.token = Some(tokens.token_for("private/busybox").await);
    let image = TestImage::busybox();
    pusher.image("private/busybox", "v1", &image).await;
    let before = tokens.issued.load(Ordering::SeqCst);

    let (_dir, store) = store();
    let info =
        store.pull(&format!("{}/private/busybox:v1", registry.addr), &NoProgress).await.unwrap();
    assert_eq!(info.id, Digest::of(&image.config()));
    assert_eq!(
        tokens.issued.load(Ordering::SeqCst),
        before + 1,
        "one token, reused for every blob"
    );
}
