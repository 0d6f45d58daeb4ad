//! Hostile layers and broken archives: nothing outside the target is touched, every failure is a
//! clear error, and a failed import leaves nothing visible in the store.

mod common;

use std::fs;
use std::path::Path;

use common::{Entry, TestImage, layer, tree};
use images::{Digest, ImageError, ImageStore};

struct Case {
    dir: tempfile::TempDir,
    store: ImageStore,
    /// A directory outside the store that hostile layers aim at.
    outside: std::path::PathBuf,
}

fn case() -> Case {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&dir.path().join("images")).unwrap();
    let outside = dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("victim"), b"untouched").unwrap();
    Case { dir, store, outside }
}

impl Case {
    fn import_layers(&self, layers: Vec<Vec<u8>>) -> Result<images::ImageInfo, ImageError> {
        let layout = self.dir.path().join("layout");
        let _ = fs::remove_dir_all(&layout);
        fs::create_dir(&layout).unwrap();
        TestImage { layers, gzip: true, arch: "amd64", cmd: vec![], user: "0" }
            .write_oci_layout(&layout);
        self.store.import(&layout, "hostile:1")
    }

    fn assert_outside_untouched(&self) {
        assert_eq!(tree(&self.outside), ["victim"]);
        assert_eq!(fs::read(self.outside.join("victim")).unwrap(), b"untouched");
    }

    /// After a failure: no image, no root filesystem, no work files; every blob is whole.
    fn assert_nothing_visible(&self) {
        let images = self.dir.path().join("images");
        assert!(self.store.list().unwrap().is_empty());
        assert!(tree(&images.join("rootfs")).is_empty(), "{:?}", tree(&images.join("rootfs")));
        assert!(tree(&images.join("tmp")).is_empty(), "{:?}", tree(&images.join("tmp")));
        for name in tree(&images.join("blobs/sha256")) {
            let bytes = fs::read(images.join("blobs/sha256").join(&name)).unwrap();
            assert_eq!(Digest::of(&bytes).hex(), name, "a stored blob does not match its name");
        }
    }
}

fn unsafe_reason(r: Result<images::ImageInfo, ImageError>) -> String {
    match r {
        Err(ImageError::UnsafeEntry { reason, .. }) => reason.to_string(),
        other => panic!("expected an unsafe-entry error, got {other:?}"),
    }
}

#[test]
fn dot_dot_paths_are_refused() {
    let c = case();
    let r = c.import_layers(vec![layer(&[Entry::File("../../outside/victim", b"pwned", 0o644)])]);
    assert!(unsafe_reason(r).contains(".."));
    let r = c.import_layers(vec![layer(&[Entry::File("a/../../outside/x", b"pwned", 0o644)])]);
    assert!(unsafe_reason(r).contains(".."));
    let r = c.import_layers(vec![layer(&[Entry::File(".wh...", b"", 0o644)])]);
    unsafe_reason(r);
    c.assert_outside_untouched();
    c.assert_nothing_visible();
}

#[test]
fn absolute_paths_and_symlinks_stay_inside_the_root() {
    let c = case();
    let outside = c.outside.to_str().unwrap();
    let abs_file = format!("{outside}/abs-file");
    let rel_up = "../../../../../../../../..".to_string() + outside;
    let layers = vec![
        layer(&[
            Entry::Symlink("evil", outside),
            Entry::Symlink("up", &rel_up),
            Entry::Symlink("passwd", "/etc/passwd"),
        ]),
        layer(&[
            Entry::File(&abs_file, b"absolute", 0o644),
            Entry::File("evil/pwned", b"through a symlink", 0o644),
            Entry::File("up/also", b"through ..", 0o644),
            Entry::File("evil/.wh.victim", b"", 0o644),
            Entry::Hardlink("hard", "passwd"),
        ]),
        layer(&[
            Entry::File("up/.wh..wh..opq", b"", 0o644),
            Entry::File("passwd", b"replaced", 0o644),
        ]),
    ];
    c.import_layers(layers).unwrap();
    c.assert_outside_untouched();
    let root = c.store.rootfs("hostile:1").unwrap();
    let inner = root.join(outside.trim_start_matches('/'));
    // The opaque marker of layer 3 cleared what layers 1-2 put in the same (inner) directory.
    assert_eq!(tree(&inner), Vec::<String>::new());
    // `hard` is a hard link to the symlink itself, never to the host's /etc/passwd.
    assert_eq!(fs::read_link(root.join("hard")).unwrap(), Path::new("/etc/passwd"));
    assert_eq!(fs::read(root.join("passwd")).unwrap(), b"replaced");
    assert!(fs::read_to_string("/etc/passwd").unwrap().starts_with("root:"));
}

#[test]
fn hard_links_to_outside_are_refused() {
    let c = case();
    let victim = c.outside.join("victim");
    let r = c.import_layers(vec![layer(&[Entry::Hardlink("h", victim.to_str().unwrap())])]);
    assert!(
        matches!(r, Err(ImageError::Malformed { ref detail, .. }) if detail.contains("points to missing")),
        "{r:?}"
    );
    let r = c.import_layers(vec![layer(&[Entry::Hardlink("h", "../outside/victim")])]);
    unsafe_reason(r);
    assert_eq!(
        fs::metadata(&victim).map(|m| std::os::unix::fs::MetadataExt::nlink(&m)).unwrap(),
        1
    );
    c.assert_outside_untouched();
    c.assert_nothing_visible();
}

/// Writes a busybox OCI layout and lets `break_it` damage it.
fn broken_layout(
    c: &Case,
    break_it: impl FnOnce(&Path, &[u8], &[Vec<u8>]),
) -> Result<images::ImageInfo, ImageError> {
    let layout = c.dir.path().join("layout");
    let _ = fs::remove_dir_all(&layout);
    fs::create_dir(&layout).unwrap();
    let image = TestImage::busybox();
    image.write_oci_layout(&layout);
    let (manifest, blobs) = image.manifest();
    break_it(&layout, &manifest, &blobs);
    c.store.import(&layout, "broken:1")
}

fn blob_path(layout: &Path, bytes: &[u8]) -> std::path::PathBuf {
    layout.join("blobs/sha256").join(Digest::of(bytes).hex())
}

/// Rewrites the manifest (and the index pointing to it).
fn replace_manifest(layout: &Path, old: &[u8], new: &serde_json::Value) {
    fs::remove_file(blob_path(layout, old)).unwrap();
    let bytes = serde_json::to_vec(new).unwrap();
    fs::write(blob_path(layout, &bytes), &bytes).unwrap();
    let index = serde_json::json!({ "schemaVersion": 2, "manifests": [common::desc("application/vnd.oci.image.manifest.v1+json", &bytes)] });
    fs::write(layout.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

#[test]
fn broken_archives_fail_clearly_and_leave_nothing() {
    let c = case();
    // A layer whose bytes do not match its digest.
    let r = broken_layout(&c, |l, _, blobs| {
        let mut bytes = blobs[1].clone();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        fs::write(blob_path(l, &blobs[1]), bytes).unwrap();
    });
    assert!(matches!(r, Err(ImageError::DigestMismatch { .. })), "{r:?}");
    c.assert_nothing_visible();

    // A missing layer blob.
    let r = broken_layout(&c, |l, _, blobs| fs::remove_file(blob_path(l, &blobs[1])).unwrap());
    assert!(matches!(r, Err(ImageError::MissingBlob(_))), "{r:?}");

    // An unknown layer media type.
    let r = broken_layout(&c, |l, manifest, _| {
        let mut m: serde_json::Value = serde_json::from_slice(manifest).unwrap();
        m["layers"][0]["mediaType"] = "application/x-mystery".into();
        replace_manifest(l, manifest, &m);
    });
    assert!(
        matches!(r, Err(ImageError::UnsupportedMediaType(ref t)) if t == "application/x-mystery"),
        "{r:?}"
    );

    // A descriptor whose size disagrees with the blob.
    let r = broken_layout(&c, |l, manifest, _| {
        let mut m: serde_json::Value = serde_json::from_slice(manifest).unwrap();
        m["layers"][0]["size"] = 10.into();
        replace_manifest(l, manifest, &m);
    });
    assert!(matches!(r, Err(ImageError::SizeMismatch { .. })), "{r:?}");

    // A truncated (but correctly digested) gzip layer: caught while unpacking.
    let r = broken_layout(&c, |l, manifest, blobs| {
        let short = &blobs[1][..blobs[1].len() / 2];
        fs::write(blob_path(l, short), short).unwrap();
        let mut m: serde_json::Value = serde_json::from_slice(manifest).unwrap();
        m["layers"][0] = common::desc("application/vnd.oci.image.layer.v1.tar+gzip", short);
        replace_manifest(l, manifest, &m);
    });
    assert!(matches!(r, Err(ImageError::Malformed { .. })), "{r:?}");
    c.assert_nothing_visible();

    // A config that does not match the layers (a diff_id of another layer).
    let r = broken_layout(&c, |l, manifest, blobs| {
        let mut config: serde_json::Value = serde_json::from_slice(&blobs[0]).unwrap();
        config["rootfs"]["diff_ids"][0] = Digest::of(b"other").to_string().into();
        let config = serde_json::to_vec(&config).unwrap();
        fs::write(blob_path(l, &config), &config).unwrap();
        let mut m: serde_json::Value = serde_json::from_slice(manifest).unwrap();
        m["config"] = common::desc("application/vnd.oci.image.config.v1+json", &config);
        replace_manifest(l, manifest, &m);
    });
    assert!(matches!(r, Err(ImageError::DigestMismatch { .. })), "{r:?}");

    // An arm64 image.
    let layout = c.dir.path().join("arm");
    fs::create_dir(&layout).unwrap();
    TestImage { arch: "arm64", ..TestImage::busybox() }.write_oci_layout(&layout);
    let r = c.store.import(&layout, "arm:1");
    assert!(matches!(r, Err(ImageError::WrongPlatform(ref p)) if p == "linux/arm64"), "{r:?}");
    c.assert_nothing_visible();
}

#[test]
fn truncated_and_foreign_tarballs_fail_clearly() {
    let c = case();
    let layout = c.dir.path().join("layout");
    fs::create_dir(&layout).unwrap();
    TestImage::busybox().write_oci_layout(&layout);
    let full = common::tar_dir(&layout, &c.dir.path().join("full.tar"));
    let bytes = fs::read(&full).unwrap();
    let cut = c.dir.path().join("cut.tar");
    fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let r = c.store.import(&cut, "cut:1");
    assert!(
        matches!(r, Err(ImageError::Malformed { .. }) | Err(ImageError::MissingBlob(_))),
        "{r:?}"
    );
    c.assert_nothing_visible();

    let other = c.dir.path().join("other.tar");
    fs::write(&other, layer(&[Entry::File("hello", b"not an image", 0o644)])).unwrap();
    let r = c.store.import(&other, "other:1");
    assert!(matches!(r, Err(ImageError::UnknownArchive(_))), "{r:?}");
    let r = c.store.import(&c.dir.path().join("nonexistent"), "x:1");
    assert!(matches!(r, Err(ImageError::Io { .. })), "{r:?}");
    let r = c.store.import(&layout, "Bad Name");
    assert!(matches!(r, Err(ImageError::BadReference(..))), "{r:?}");
    c.assert_nothing_visible();
}
