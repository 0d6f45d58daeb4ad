//! An OCI image layout: `oci-layout`, `index.json`, `blobs/<alg>/<hex>`.

use std::path::Path;

use super::{LocalImage, locate, read_document};
use crate::blobs::check;
use crate::digest::Digest;
use crate::error::ImageError;
use crate::spec::{Descriptor, ManifestOrIndex};

/// Nested indexes followed at most this deep.
const MAX_NESTING: usize = 4;

pub fn read(root: &Path) -> Result<LocalImage, ImageError> {
    let index = read_document(root, "index.json")?;
    let mut index = match ManifestOrIndex::parse(&index, Some(crate::spec::media::OCI_INDEX))? {
        ManifestOrIndex::Index(index) => index,
        ManifestOrIndex::Manifest(_) => {
            return Err(ImageError::malformed("index.json", "is a manifest, not an index"));
        }
    };
    for _ in 0..MAX_NESTING {
        let chosen = match index.manifests.as_slice() {
            [] => return Err(ImageError::malformed("index.json", "lists no image")),
            [one] => one,
            _ => index.pick_platform().map_err(|_| {
                ImageError::malformed(
                    "index.json",
                    "lists several images and none for linux/amd64; import one at a time",
                )
            })?,
        };
        let bytes = read_blob(root, chosen)?;
        match ManifestOrIndex::parse(&bytes, Some(&chosen.media_type))? {
            ManifestOrIndex::Manifest(manifest) => {
                let config_bytes = read_blob(root, &manifest.config)?;
                let layer_files = manifest
                    .layers
                    .iter()
                    .map(|l| locate(root, &blob_path(&l.digest)))
                    .collect::<Result<_, _>>()?;
                return Ok(LocalImage {
                    manifest_bytes: bytes,
                    manifest,
                    config_bytes,
                    layer_files,
                });
            }
            ManifestOrIndex::Index(nested) => index = nested,
        }
    }
    Err(ImageError::malformed("index.json", "indexes nested too deep"))
}

fn blob_path(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

fn read_blob(root: &Path, d: &Descriptor) -> Result<Vec<u8>, ImageError> {
    let bytes = read_document(root, &blob_path(&d.digest)).map_err(|e| match e {
        ImageError::MissingBlob(_) => {
            ImageError::MissingBlob(format!("{} ({})", d.digest, d.media_type))
        }
        other => other,
    })?;
    check(&d.digest, &Digest::of(&bytes))?;
    Ok(bytes)
}
