//! `ImageStore`: the node's images under one directory.
//!
//! ```text
//! DIR/images.json          catalog: images by ID, tags (replaced atomically)
//! DIR/lock                 held by writers (any process) while they change the store
//! DIR/blobs/sha256/<hex>   manifests, configs, layers, verified against their digest
//! DIR/rootfs/<chain-id>/   unpacked root filesystems, shared by images with the same layers
//! DIR/tmp/                 work in progress, invisible to readers
//! ```

use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::blobs::BlobStore;
use crate::catalog::{Catalog, CatalogFile, ImageRecord};
use crate::digest::Digest;
use crate::error::{ImageError, IoContext};
use crate::reference::Reference;
use crate::rootfs;
use crate::spec::ConfigFile;

/// Work files older than this in `tmp/` are left over from a crash and removed on open.
const STALE_TMP: Duration = Duration::from_secs(24 * 3600);

#[derive(Clone, Debug)]
pub struct ImageStore {
    pub(crate) dir: PathBuf,
    pub(crate) blobs: BlobStore,
    pub(crate) catalog: CatalogFile,
    pub(crate) tmp: PathBuf,
    pub(crate) insecure_registries: Vec<String>,
}

/// What a node reports about an image (CRI `Image`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    /// The config digest.
    pub id: Digest,
    /// `registry/repository:tag`, normalised (`busybox` is `docker.io/library/busybox:latest`).
    pub repo_tags: Vec<String>,
    /// `registry/repository@sha256:...` for images pulled from a registry.
    pub repo_digests: Vec<String>,
    /// Bytes of the image's config and layers as stored.
    pub size: u64,
}

/// What a container of the image runs by default (from the image config).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `NAME=value` entries.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    /// `80/tcp`-style keys.
    pub exposed_ports: Vec<String>,
    pub stop_signal: Option<String>,
}

/// Space the store takes (CRI `ImageFsInfo`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FsUsage {
    pub bytes: u64,
    pub inodes: u64,
}

impl ImageStore {
    /// Opens (creating if needed) the store in `dir`. Other processes may use it at the same time.
    pub fn open(dir: &Path) -> Result<ImageStore, ImageError> {
        let tmp = dir.join("tmp");
        for d in [dir, &tmp, &dir.join("rootfs")] {
            // 0700: root filesystems keep their setuid files and owners.
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(d)
                .ctx(|| format!("creating {}", d.display()))?;
        }
        let blobs = BlobStore::open(dir.join("blobs").join("sha256"), tmp.clone())?;
        let store = ImageStore {
            dir: dir.to_path_buf(),
            blobs,
            catalog: CatalogFile::new(dir),
            tmp,
            insecure_registries: Vec::new(),
        };
        store.clean_stale_tmp();
        Ok(store)
    }

    /// Registries (`host[:port]`) to reach over plain HTTP; loopback ones always are.
    pub fn with_insecure_registries(mut self, hosts: Vec<String>) -> ImageStore {
        self.insecure_registries = hosts;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn list(&self) -> Result<Vec<ImageInfo>, ImageError> {
        let catalog = self.catalog.read()?;
        Ok(catalog.images.iter().map(|(id, r)| info(&catalog, id, r)).collect())
    }

    /// Finds an image by `name[:tag]`, `name@digest`, its ID (`sha256:...`, the bare hex or a
    /// unique prefix of at least 12 hex digits).
    pub fn status(&self, reference: &str) -> Result<Option<ImageInfo>, ImageError> {
        let catalog = self.catalog.read()?;
        Ok(lookup(&catalog, reference)?.map(|id| info(&catalog, &id, &catalog.images[&id])))
    }

    /// Removes an image named by tag only drops that tag while other tags remain; by ID or
    /// digest, it removes the image and all its tags. Content no other image uses is deleted.
    pub fn remove(&self, reference: &str) -> Result<(), ImageError> {
        self.catalog.update(|catalog| {
            let id = lookup(catalog, reference)?
                .ok_or_else(|| ImageError::NotFound(reference.to_string()))?;
            if let Ok(r) = Reference::parse(reference)
                && let Some(tag) = r.tagged().filter(|t| catalog.tags.get(t) == Some(&id))
                && r.digest.is_none()
            {
                catalog.tags.remove(&tag);
                if !catalog.tags_of(&id).is_empty() {
                    return Ok(());
                }
            }
            catalog.tags.retain(|_, v| *v != id);
            let Some(record) = catalog.images.remove(&id) else { return Ok(()) };
            for blob in record.blobs() {
                if !catalog.uses_blob(blob) {
                    self.blobs.remove(blob)?;
                }
            }
            if !catalog.uses_chain(&record.chain_id) {
                rootfs::remove(&self.rootfs_dir(&record.chain_id), &self.tmp)?;
            }
            // Blobs of imports and pulls that failed before committing: old enough that no
            // import or pull in progress can still be about to use them.
            self.blobs.sweep(|d| catalog.uses_blob(d), STALE_TMP)?;
            tracing::info!(image = %id, "removed");
            Ok(())
        })
    }

    /// The image's unpacked root filesystem. Shared by every container of the image (and of
    /// images with the same layers): callers must treat it as read-only.
    pub fn rootfs(&self, reference: &str) -> Result<PathBuf, ImageError> {
        let (_, record) = self.record(reference)?;
        Ok(self.rootfs_dir(&record.chain_id))
    }

    pub fn config(&self, reference: &str) -> Result<ImageConfig, ImageError> {
        let (_, record) = self.record(reference)?;
        let bytes = self.blobs.read_document(&record.config)?;
        let file: ConfigFile =
            serde_json::from_slice(&bytes).map_err(|e| ImageError::malformed("image config", e))?;
        let c = file.config.unwrap_or_default();
        Ok(ImageConfig {
            entrypoint: c.entrypoint.unwrap_or_default(),
            cmd: c.cmd.unwrap_or_default(),
            env: c.env.unwrap_or_default(),
            working_dir: c.working_dir.filter(|w| !w.is_empty()),
            user: c.user.filter(|u| !u.is_empty()),
            exposed_ports: c.exposed_ports.map(|p| p.into_keys().collect()).unwrap_or_default(),
            stop_signal: c.stop_signal.filter(|s| !s.is_empty()),
        })
    }

    /// Bytes (allocated blocks) and inodes under the store's directory; hard links count once.
    pub fn usage(&self) -> Result<FsUsage, ImageError> {
        let mut seen = std::collections::HashSet::new();
        let mut usage = FsUsage::default();
        let mut stack = vec![self.dir.clone()];
        while let Some(path) = stack.pop() {
            // Entries can vanish under a concurrent remove: skip them.
            let Ok(meta) = fs::symlink_metadata(&path) else { continue };
            if !seen.insert((meta.dev(), meta.ino())) {
                continue;
            }
            usage.bytes += meta.blocks() * 512;
            usage.inodes += 1;
            if meta.is_dir()
                && let Ok(entries) = fs::read_dir(&path)
            {
                stack.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
            }
        }
        Ok(usage)
    }

    pub(crate) fn rootfs_dir(&self, chain_id: &Digest) -> PathBuf {
        self.dir.join("rootfs").join(chain_id.hex())
    }

    fn record(&self, reference: &str) -> Result<(Digest, ImageRecord), ImageError> {
        let mut catalog = self.catalog.read()?;
        let id = lookup(&catalog, reference)?
            .ok_or_else(|| ImageError::NotFound(reference.to_string()))?;
        let record = catalog
            .images
            .remove(&id)
            .ok_or_else(|| ImageError::NotFound(reference.to_string()))?;
        Ok((id, record))
    }

    /// Records an image whose blobs are all in the store, unpacking its root filesystem if no
    /// image with the same layers has one yet; `tags` then point to it.
    pub(crate) fn commit(
        &self,
        id: Digest,
        record: ImageRecord,
        tags: &[String],
    ) -> Result<ImageInfo, ImageError> {
        self.catalog.update(|catalog| {
            for blob in record.blobs() {
                if !self.blobs.contains(blob) {
                    return Err(ImageError::RemovedConcurrently(blob.clone()));
                }
            }
            let layers: Vec<_> =
                record.layers.iter().cloned().zip(record.diff_ids.iter().cloned()).collect();
            rootfs::build(&self.blobs, &layers, &self.rootfs_dir(&record.chain_id), &self.tmp)?;
            let entry = catalog.images.entry(id.clone()).or_insert_with(|| record.clone());
            for d in &record.repo_digests {
                if !entry.repo_digests.contains(d) {
                    entry.repo_digests.push(d.clone());
                }
            }
            // An image whose last tag moves away stays, untagged, until removed by ID (the
            // kubelet's image GC does that), since containers may still run from it.
            for t in tags {
                catalog.tags.insert(t.clone(), id.clone());
            }
            Ok(info(catalog, &id, &catalog.images[&id]))
        })
    }

    fn clean_stale_tmp(&self) {
        let Ok(entries) = fs::read_dir(&self.tmp) else { return };
        let now = SystemTime::now();
        for e in entries.flatten() {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).unwrap_or_default() > STALE_TMP);
            if old {
                let p = e.path();
                let _ = if p.is_dir() { fs::remove_dir_all(&p) } else { fs::remove_file(&p) };
            }
        }
    }
}

fn info(catalog: &Catalog, id: &Digest, r: &ImageRecord) -> ImageInfo {
    ImageInfo {
        id: id.clone(),
        repo_tags: catalog.tags_of(id),
        repo_digests: r.repo_digests.clone(),
        size: r.size,
    }
}

fn lookup(catalog: &Catalog, reference: &str) -> Result<Option<Digest>, ImageError> {
    let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
    if let Some(id) = Digest::from_hex(hex)
        && catalog.images.contains_key(&id)
    {
        return Ok(Some(id));
    }
    if let Ok(r) = Reference::parse(reference) {
        if let Some(d) = &r.digest {
            let by_digest = r.with_digest(d);
            return Ok(catalog
                .images
                .iter()
                .find(|(_, rec)| {
                    rec.repo_digests.contains(&by_digest) || (&rec.manifest == d && r.tag.is_none())
                })
                .map(|(id, _)| id.clone()));
        }
        if let Some(id) = r.tagged().and_then(|t| catalog.tags.get(&t)) {
            return Ok(Some(id.clone()));
        }
    }
    if hex.len() >= 12 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut matches = catalog.images.keys().filter(|id| id.hex().starts_with(hex));
        if let (Some(id), None) = (matches.next(), matches.next()) {
            return Ok(Some(id.clone()));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn pull_futures_can_be_spawned() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let pull = store.pull("busybox", &crate::NoProgress);
        assert_send(&pull);
    }
}
