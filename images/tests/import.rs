//! Importing images from OCI layouts and `docker save` archives, built here from busybox-static.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;

use common::{Entry, TestImage, layer, tar_dir, tree};
use images::{ImageError, ImageStore};

fn store() -> (tempfile::TempDir, ImageStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&dir.path().join("images")).unwrap();
    (dir, store)
}

fn assert_busybox_rootfs(store: &ImageStore, name: &str) {
    let root = store.rootfs(name).unwrap();
    let busybox = fs::metadata(root.join("bin/busybox")).unwrap();
    assert_eq!(busybox.len(), fs::metadata(common::BUSYBOX).unwrap().len());
    assert_eq!(busybox.mode() & 0o777, 0o755);
    assert_eq!(fs::read_link(root.join("bin/sh")).unwrap().to_str(), Some("busybox"));
    assert_eq!(fs::metadata(root.join("bin/ls")).unwrap().ino(), busybox.ino(), "hard link kept");
    assert_eq!(fs::read_to_string(root.join("etc/hostname")).unwrap(), "from-the-image\n");
    // The unpacked busybox really runs.
    let out =
        std::process::Command::new(root.join("bin/busybox")).args(["echo", "ok"]).output().unwrap();
    assert_eq!(out.stdout, b"ok\n");
}

#[test]
fn oci_layout_directory_and_tarball_import_the_same_image() {
    let (dir, store) = store();
    let image = TestImage::busybox();
    let layout = dir.path().join("layout");
    fs::create_dir(&layout).unwrap();
    image.write_oci_layout(&layout);

    let info = store.import(&layout, "busybox:1").unwrap();
    assert_eq!(info.repo_tags, ["docker.io/library/busybox:1"]);
    assert_eq!(info.id, images::Digest::of(&image.config()));
    assert!(info.repo_digests.is_empty());
    assert_busybox_rootfs(&store, "busybox:1");

    let tarball = tar_dir(&layout, &dir.path().join("layout.tar"));
    let again = store.import(&tarball, "example.test/bb:v2").unwrap();
    assert_eq!(again.id, info.id);
    assert_eq!(store.rootfs("example.test/bb:v2").unwrap(), store.rootfs("busybox:1").unwrap());
    assert_eq!(store.list().unwrap().len(), 1);
    let status = store.status(&info.id.to_string()).unwrap().unwrap();
    assert_eq!(status.repo_tags, ["docker.io/library/busybox:1", "example.test/bb:v2"]);
    assert_eq!(store.status(&info.id.hex()[..12]).unwrap().unwrap().id, info.id);
    assert!(store.status("busybox:2").unwrap().is_none());

    let config = store.config("busybox:1").unwrap();
    assert_eq!(config.cmd, ["/bin/sh"]);
    assert_eq!(config.env, ["PATH=/bin", "GREETING=hello"]);
    assert_eq!(config.working_dir.as_deref(), Some("/tmp"));
    assert_eq!(config.user.as_deref(), Some("0"));
    assert_eq!(config.exposed_ports, ["80/tcp"]);
    assert!(config.entrypoint.is_empty());

    // Nothing is left over in tmp/ after a tarball import.
    assert!(tree(&dir.path().join("images/tmp")).is_empty());
    let usage = store.usage().unwrap();
    // The unpacked busybox plus its compressed layer blob.
    let layer_blob = image.layer_blobs()[0].0.len() as u64;
    assert!(usage.bytes > fs::metadata(common::BUSYBOX).unwrap().len() + layer_blob, "{usage:?}");
    assert!(usage.inodes > 10, "{usage:?}");
}

#[test]
fn docker_archives_import_plain_and_gzipped() {
    let (dir, store) = store();
    let image = TestImage::busybox();
    let archive = dir.path().join("saved");
    fs::create_dir(&archive).unwrap();
    image.write_docker_archive(&archive);
    let tarball = tar_dir(&archive, &dir.path().join("saved.tar"));
    let info = store.import(&tarball, "saved:latest").unwrap();
    assert_eq!(info.id, images::Digest::of(&image.config()));
    assert_busybox_rootfs(&store, "saved");

    let gz = dir.path().join("saved.tar.gz");
    fs::write(&gz, common::gzip(&fs::read(&tarball).unwrap())).unwrap();
    assert_eq!(store.import(&gz, "saved:gz").unwrap().id, info.id);
}

#[test]
fn layers_apply_in_order_with_whiteouts() {
    let (dir, store) = store();
    let lower = layer(&[
        Entry::Dir("etc/"),
        Entry::File("etc/keep", b"lower", 0o644),
        Entry::File("etc/gone", b"lower", 0o644),
        Entry::Dir("var/"),
        Entry::Dir("var/cache/"),
        Entry::File("var/cache/old1", b"x", 0o644),
        Entry::Dir("var/cache/sub/"),
        Entry::File("var/cache/sub/old2", b"x", 0o644),
        Entry::File("replaced", b"a file first", 0o644),
    ]);
    let upper = layer(&[
        Entry::File("etc/.wh.gone", b"", 0o644),
        Entry::File("etc/keep", b"upper", 0o600),
        Entry::Dir("var/cache/"),
        Entry::File("var/cache/new", b"y", 0o644),
        Entry::File("var/cache/.wh..wh..opq", b"", 0o644),
        Entry::Dir("replaced/"),
        Entry::File("replaced/inside", b"z", 0o644),
        Entry::File(".wh.never-existed", b"", 0o644),
    ]);
    let image = TestImage {
        layers: vec![lower, upper],
        gzip: false,
        arch: "amd64",
        cmd: vec![],
        user: "0",
    };
    let layout = dir.path().join("layout");
    fs::create_dir(&layout).unwrap();
    image.write_oci_layout(&layout);
    store.import(&layout, "layered:1").unwrap();
    let root = store.rootfs("layered:1").unwrap();
    assert_eq!(
        tree(&root),
        ["etc", "etc/keep", "replaced", "replaced/inside", "var", "var/cache", "var/cache/new"]
    );
    assert_eq!(fs::read(root.join("etc/keep")).unwrap(), b"upper");
    assert_eq!(fs::metadata(root.join("etc/keep")).unwrap().mode() & 0o777, 0o600);
}

#[test]
fn removing_untags_then_deletes_unshared_content() {
    let (dir, store) = store();
    let layout = dir.path().join("layout");
    fs::create_dir(&layout).unwrap();
    TestImage::busybox().write_oci_layout(&layout);
    let info = store.import(&layout, "a:1").unwrap();
    store.import(&layout, "b:1").unwrap();
    let root = store.rootfs("a:1").unwrap();
    store.remove("a:1").unwrap();
    assert!(root.is_dir(), "b:1 still uses it");
    assert_eq!(
        store.status(&info.id.to_string()).unwrap().unwrap().repo_tags,
        ["docker.io/library/b:1"]
    );
    // Blobs left by failed imports: swept once they are a day old, not while they are recent.
    let blobs = dir.path().join("images/blobs/sha256");
    let (stale, fresh) = (images::Digest::of(b"stale"), images::Digest::of(b"fresh"));
    fs::write(blobs.join(fresh.hex()), b"fresh").unwrap();
    let f = fs::File::options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(blobs.join(stale.hex()))
        .unwrap();
    f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 86400))
        .unwrap();
    drop(f);
    store.remove("b:1").unwrap();
    assert_eq!(tree(&blobs), [fresh.hex()]);
    fs::remove_file(blobs.join(fresh.hex())).unwrap();
    assert!(store.list().unwrap().is_empty());
    assert!(!root.exists());
    assert!(tree(&dir.path().join("images/blobs/sha256")).is_empty());
    assert!(matches!(store.remove("b:1"), Err(ImageError::NotFound(_))));
}

#[test]
fn zstd_layers_unpack() {
    // Debian's zstd compresses; the store decompresses with a pure-Rust decoder.
    let (dir, store) = store();
    let plain = common::busybox_layer();
    let raw = dir.path().join("layer.tar");
    fs::write(&raw, &plain).unwrap();
    let status = std::process::Command::new("zstd").args(["-q", "-f", "-3"]).arg(&raw).status();
    let Ok(status) = status else {
        panic!("zstd is installed (scripts/setup)");
    };
    assert!(status.success());
    let zst = fs::read(dir.path().join("layer.tar.zst")).unwrap();
    let image =
        TestImage { layers: vec![plain], gzip: false, arch: "amd64", cmd: vec![], user: "0" };
    let config = image.config();
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": common::desc("application/vnd.oci.image.config.v1+json", &config),
        "layers": [common::desc("application/vnd.oci.image.layer.v1.tar+zstd", &zst)],
    });
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let layout = dir.path().join("layout");
    write_layout(&layout, &manifest, &[&config, &zst]);
    store.import(&layout, "zstd:1").unwrap();
    assert_busybox_rootfs(&store, "zstd:1");
}

/// A layout holding exactly these blobs and an index pointing to `manifest`.
fn write_layout(dir: &std::path::Path, manifest: &[u8], blobs: &[&[u8]]) {
    let blob_dir = dir.join("blobs/sha256");
    fs::create_dir_all(&blob_dir).unwrap();
    for b in blobs.iter().chain([&manifest]) {
        fs::write(blob_dir.join(images::Digest::of(b).hex()), b).unwrap();
    }
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = serde_json::json!({ "schemaVersion": 2, "manifests": [common::desc("application/vnd.oci.image.manifest.v1+json", manifest)] });
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}
