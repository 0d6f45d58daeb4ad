//! Images built by the tests themselves from Debian's busybox-static, written as OCI layouts and
//! `docker save` archives, and a real `docker-registry` to push them to.

#![allow(dead_code)]

pub mod registry;
pub mod token;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use images::Digest;
use serde_json::{Value, json};

pub const BUSYBOX: &str = "/bin/busybox";

/// One entry of a test layer.
pub enum Entry<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8], u32),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
}

/// An uncompressed layer tarball. Names are written into the header as given (even `..` or
/// absolute ones, which the tar crate's safe setters refuse), so hostile layers can be built.
pub fn layer(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        let (name, data): (&str, &[u8]) = match e {
            Entry::Dir(p) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                (p, &[])
            }
            Entry::File(p, d, mode) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                (p, d)
            }
            Entry::Symlink(p, t) | Entry::Hardlink(p, t) => {
                h.set_entry_type(if matches!(e, Entry::Symlink(..)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                });
                h.set_mode(0o777);
                set_raw(&mut h.as_old_mut().linkname, t);
                (p, &[])
            }
        };
        set_raw(&mut h.as_old_mut().name, name);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

fn set_raw(field: &mut [u8; 100], s: &str) {
    assert!(s.len() < 100, "test names are short");
    field.fill(0);
    field[..s.len()].copy_from_slice(s.as_bytes());
}

/// The busybox layer: `/bin/busybox`, `sh`, `cat`, `ls` links, `/etc/hostname`.
pub fn busybox_layer() -> Vec<u8> {
    let busybox = fs::read(BUSYBOX).expect("busybox-static is installed (scripts/setup)");
    layer(&[
        Entry::Dir("bin/"),
        Entry::File("bin/busybox", &busybox, 0o755),
        Entry::Symlink("bin/sh", "busybox"),
        Entry::Symlink("bin/cat", "busybox"),
        Entry::Hardlink("bin/ls", "bin/busybox"),
        Entry::Dir("etc/"),
        Entry::File("etc/hostname", b"from-the-image\n", 0o644),
        Entry::Dir("tmp/"),
    ])
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// A test image: uncompressed layers, bottom first, plus the run config.
pub struct TestImage {
    pub layers: Vec<Vec<u8>>,
    pub gzip: bool,
    pub arch: &'static str,
    pub cmd: Vec<&'static str>,
    /// The config's `User`.
    pub user: &'static str,
}

impl TestImage {
    pub fn busybox() -> TestImage {
        TestImage {
            layers: vec![busybox_layer()],
            gzip: true,
            arch: "amd64",
            cmd: vec!["/bin/sh"],
            user: "0",
        }
    }

    pub fn config(&self) -> Vec<u8> {
        let diff_ids: Vec<String> = self.layers.iter().map(|l| Digest::of(l).to_string()).collect();
        serde_json::to_vec(&json!({
            "architecture": self.arch, "os": "linux",
            "config": { "Cmd": self.cmd, "Env": ["PATH=/bin", "GREETING=hello"], "WorkingDir": "/tmp",
                        "User": self.user, "ExposedPorts": { "80/tcp": {} } },
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
        }))
        .unwrap()
    }

    /// The layer blobs as stored (compressed or not) with their media types.
    pub fn layer_blobs(&self) -> Vec<(Vec<u8>, &'static str)> {
        self.layers
            .iter()
            .map(|l| {
                if self.gzip {
                    (gzip(l), "application/vnd.oci.image.layer.v1.tar+gzip")
                } else {
                    (l.clone(), "application/vnd.oci.image.layer.v1.tar")
                }
            })
            .collect()
    }

    /// The OCI manifest and the blobs it refers to (config first).
    pub fn manifest(&self) -> (Vec<u8>, Vec<Vec<u8>>) {
        let config = self.config();
        let layers = self.layer_blobs();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": desc("application/vnd.oci.image.config.v1+json", &config),
            "layers": layers.iter().map(|(b, m)| desc(m, b)).collect::<Vec<_>>(),
        });
        let mut blobs = vec![config];
        blobs.extend(layers.into_iter().map(|(b, _)| b));
        (serde_json::to_vec(&manifest).unwrap(), blobs)
    }

    /// Writes an OCI image layout into `dir`; returns the manifest digest.
    pub fn write_oci_layout(&self, dir: &Path) -> Digest {
        let (manifest, blobs) = self.manifest();
        let blob_dir = dir.join("blobs/sha256");
        fs::create_dir_all(&blob_dir).unwrap();
        for b in blobs.iter().chain([&manifest]) {
            fs::write(blob_dir.join(Digest::of(b).hex()), b).unwrap();
        }
        fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let mut d = desc("application/vnd.oci.image.manifest.v1+json", &manifest);
        d["annotations"] = json!({ "org.opencontainers.image.ref.name": "test" });
        let index = json!({ "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [d] });
        fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
        Digest::of(&manifest)
    }

    /// Writes what `docker save` writes (uncompressed layers in `<id>/layer.tar`) into `dir`.
    pub fn write_docker_archive(&self, dir: &Path) {
        let config = self.config();
        let config_name = format!("{}.json", Digest::of(&config).hex());
        fs::write(dir.join(&config_name), &config).unwrap();
        let mut layer_names = Vec::new();
        for l in &self.layers {
            let id = Digest::of(l).hex();
            fs::create_dir_all(dir.join(&id)).unwrap();
            fs::write(dir.join(&id).join("layer.tar"), l).unwrap();
            layer_names.push(format!("{id}/layer.tar"));
        }
        let manifest =
            json!([{ "Config": config_name, "RepoTags": ["test:latest"], "Layers": layer_names }]);
        fs::write(dir.join("manifest.json"), serde_json::to_vec(&manifest).unwrap()).unwrap();
    }
}

pub fn desc(media_type: &str, bytes: &[u8]) -> Value {
    json!({ "mediaType": media_type, "digest": Digest::of(bytes).to_string(), "size": bytes.len() })
}

/// Packs a directory into a tarball with the real `tar`.
pub fn tar_dir(dir: &Path, out: &Path) -> PathBuf {
    let status =
        Command::new("tar").arg("-C").arg(dir).arg("-cf").arg(out).arg(".").status().unwrap();
    assert!(status.success());
    out.to_path_buf()
}

/// Every file under `dir` (relative), sorted: what a failed operation must not leave behind.
pub fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        for e in fs::read_dir(&p).unwrap().flatten() {
            let path = e.path();
            out.push(path.strip_prefix(dir).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}
