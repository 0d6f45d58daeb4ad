//! `ImageStore::import`: an image from a local OCI layout or `docker save` archive.

use std::fs::{self, File};
use std::io::BufReader;
use std::path::Path;

use crate::archive::{self, Archive};
use crate::catalog::ImageRecord;
use crate::error::{ImageError, IoContext};
use crate::reference::Reference;
use crate::spec::{Compression, Descriptor, Manifest, media};
use crate::store::{ImageInfo, ImageStore};

impl ImageStore {
    /// Imports the image in `path` (an OCI image layout or `docker save` archive; a directory
    /// or a tarball) and tags it `name` (`name:tag`, normalised like a pull reference).
    pub fn import(&self, path: &Path, name: &str) -> Result<ImageInfo, ImageError> {
        let reference = Reference::parse(name)?;
        let tag = match (&reference.digest, reference.tagged()) {
            (None, Some(tag)) => tag,
            _ => {
                return Err(ImageError::BadReference(
                    name.to_string(),
                    "an import is named name:tag, without a digest",
                ));
            }
        };
        let meta = fs::metadata(path).ctx(|| format!("reading {}", path.display()))?;
        let staging;
        let root = if meta.is_dir() {
            path
        } else {
            staging = tempfile::Builder::new()
                .prefix("import-")
                .tempdir_in(&self.tmp)
                .ctx(|| format!("creating a directory in {}", self.tmp.display()))?;
            archive::stage_tarball(path, staging.path())?;
            staging.path()
        };
        let (manifest_digest, manifest, config_bytes) = match archive::read(root)? {
            Archive::Oci(image) => {
                self.blobs.write_from(
                    &mut &image.config_bytes[..],
                    &image.manifest.config.digest,
                    Some(image.manifest.config.size),
                )?;
                for (layer, file) in image.manifest.layers.iter().zip(&image.layer_files) {
                    let mut f = File::open(file).ctx(|| format!("opening {}", file.display()))?;
                    self.blobs.write_from(&mut f, &layer.digest, Some(layer.size))?;
                }
                (self.blobs.write_bytes(&image.manifest_bytes)?, image.manifest, image.config_bytes)
            }
            Archive::Docker(image) => {
                let config_digest = self.blobs.write_bytes(&image.config_bytes)?;
                let mut layers = Vec::new();
                for file in &image.layer_files {
                    let mut reader = BufReader::new(
                        File::open(file).ctx(|| format!("opening {}", file.display()))?,
                    );
                    let compression = Compression::sniff(&mut reader)
                        .ctx(|| format!("reading {}", file.display()))?;
                    let (digest, size) = self.blobs.write_any(&mut reader)?;
                    layers.push(descriptor(compression.docker_layer_type(), digest, size));
                }
                let config = descriptor(
                    media::DOCKER_CONFIG,
                    config_digest,
                    image.config_bytes.len() as u64,
                );
                let manifest = Manifest {
                    schema_version: 2,
                    media_type: Some(media::DOCKER_MANIFEST.to_string()),
                    config,
                    layers,
                };
                let bytes = serde_json::to_vec(&manifest)
                    .map_err(|e| ImageError::malformed("manifest", e))?;
                (self.blobs.write_bytes(&bytes)?, manifest, image.config_bytes)
            }
        };
        let (id, record) = ImageRecord::new(manifest_digest, &manifest, &config_bytes, Vec::new())?;
        let info = self.commit(id, record, &[tag])?;
        tracing::info!(image = %info.id, name = %reference, source = %path.display(), "imported");
        Ok(info)
    }
}

fn descriptor(media_type: &str, digest: crate::digest::Digest, size: u64) -> Descriptor {
    Descriptor {
        media_type: media_type.to_string(),
        digest,
        size,
        platform: None,
        annotations: Default::default(),
    }
}
