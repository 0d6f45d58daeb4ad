//! The catalog of images and tags: one JSON file replaced atomically (write, then rename), so
//! readers in any process see either the old or the new state without locking. Writers take
//! an exclusive lock on a lock file for their read-modify-write.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{ImageError, IoContext};
use crate::rootfs::chain_id;
use crate::spec::{ConfigFile, Descriptor, Manifest};

/// One stored image, keyed in the catalog by its ID (the config digest).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImageRecord {
    pub manifest: Digest,
    pub config: Digest,
    pub layers: Vec<Descriptor>,
    pub diff_ids: Vec<Digest>,
    /// Names the root filesystem directory.
    pub chain_id: Digest,
    /// Config plus layers as stored (compressed where the image came compressed).
    pub size: u64,
    /// `registry/repository@digest` of the manifest or index it was pulled by.
    #[serde(default)]
    pub repo_digests: Vec<String>,
}

impl ImageRecord {
    /// Describes an image from its manifest and config, checking that they agree and that the
    /// image is for linux/amd64. Returns the image ID too.
    pub fn new(
        manifest_digest: Digest,
        manifest: &Manifest,
        config_bytes: &[u8],
        repo_digests: Vec<String>,
    ) -> Result<(Digest, ImageRecord), ImageError> {
        let config: ConfigFile = serde_json::from_slice(config_bytes)
            .map_err(|e| ImageError::malformed("image config", e))?;
        if (!config.os.is_empty() && config.os != "linux")
            || (!config.architecture.is_empty() && config.architecture != "amd64")
        {
            return Err(ImageError::WrongPlatform(format!(
                "{}/{}",
                config.os, config.architecture
            )));
        }
        if config.rootfs.kind != "layers" {
            return Err(ImageError::malformed(
                "image config",
                format!("rootfs type {:?} is not \"layers\"", config.rootfs.kind),
            ));
        }
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(ImageError::malformed(
                "image config",
                format!(
                    "{} diff_ids for {} layers",
                    config.rootfs.diff_ids.len(),
                    manifest.layers.len()
                ),
            ));
        }
        let chain_id = chain_id(&config.rootfs.diff_ids).unwrap_or_else(|| Digest::of(b""));
        let size = manifest.config.size + manifest.layers.iter().map(|l| l.size).sum::<u64>();
        let record = ImageRecord {
            manifest: manifest_digest,
            config: manifest.config.digest.clone(),
            layers: manifest.layers.clone(),
            diff_ids: config.rootfs.diff_ids,
            chain_id,
            size,
            repo_digests,
        };
        Ok((manifest.config.digest.clone(), record))
    }

    pub fn blobs(&self) -> impl Iterator<Item = &Digest> {
        [&self.manifest, &self.config].into_iter().chain(self.layers.iter().map(|l| &l.digest))
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Catalog {
    pub images: BTreeMap<Digest, ImageRecord>,
    /// `registry/repository:tag` -> image ID.
    pub tags: BTreeMap<String, Digest>,
}

impl Catalog {
    pub fn load(path: &Path) -> Result<Catalog, ImageError> {
        match fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| ImageError::malformed(path.display().to_string(), e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Catalog::default()),
            Err(e) => {
                Err(ImageError::Io { context: format!("reading {}", path.display()), source: e })
            }
        }
    }

    fn save(&self, path: &Path) -> Result<(), ImageError> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut tmp = tempfile::NamedTempFile::with_prefix_in(".catalog-", dir)
            .ctx(|| format!("creating a file in {}", dir.display()))?;
        let bytes =
            serde_json::to_vec_pretty(self).map_err(|e| ImageError::malformed("catalog", e))?;
        tmp.write_all(&bytes).ctx(|| "writing the catalog".to_string())?;
        tmp.as_file().sync_data().ctx(|| "syncing the catalog".to_string())?;
        tmp.persist(path).map_err(|e| ImageError::Io {
            context: format!("replacing {}", path.display()),
            source: e.error,
        })?;
        Ok(())
    }

    pub fn tags_of(&self, id: &Digest) -> Vec<String> {
        self.tags.iter().filter(|(_, v)| *v == id).map(|(k, _)| k.clone()).collect()
    }

    /// Is this blob used by any image?
    pub fn uses_blob(&self, digest: &Digest) -> bool {
        self.images.values().any(|r| r.blobs().any(|b| b == digest))
    }

    pub fn uses_chain(&self, chain: &Digest) -> bool {
        self.images.values().any(|r| &r.chain_id == chain)
    }
}

/// The catalog file and its lock.
#[derive(Clone, Debug)]
pub struct CatalogFile {
    path: PathBuf,
    lock: PathBuf,
}

impl CatalogFile {
    pub fn new(dir: &Path) -> CatalogFile {
        CatalogFile { path: dir.join("images.json"), lock: dir.join("lock") }
    }

    pub fn read(&self) -> Result<Catalog, ImageError> {
        Catalog::load(&self.path)
    }

    /// Runs `f` with the catalog under the exclusive lock, saving it if `f` succeeds. The lock
    /// is held across `f`, so work in it (unpacking, removing) is serialised between processes.
    pub fn update<T>(
        &self,
        f: impl FnOnce(&mut Catalog) -> Result<T, ImageError>,
    ) -> Result<T, ImageError> {
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock)
            .ctx(|| format!("opening {}", self.lock.display()))?;
        lock.lock().ctx(|| format!("locking {}", self.lock.display()))?;
        let mut catalog = self.read()?;
        let out = f(&mut catalog)?;
        catalog.save(&self.path)?;
        Ok(out)
        // The lock is released when `lock` is dropped.
    }
}
