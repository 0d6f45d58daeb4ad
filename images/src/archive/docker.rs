//! A `docker save` archive: `manifest.json` lists each image's config file and layer tarballs.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{locate, read_document};
use crate::error::ImageError;

pub struct DockerImage {
    pub config_bytes: Vec<u8>,
    pub layer_files: Vec<PathBuf>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    config: String,
    layers: Vec<String>,
}

pub fn read(root: &Path) -> Result<DockerImage, ImageError> {
    let bytes = read_document(root, "manifest.json")?;
    let mut entries: Vec<Entry> =
        serde_json::from_slice(&bytes).map_err(|e| ImageError::malformed("manifest.json", e))?;
    let entry = match entries.len() {
        1 => entries.remove(0),
        0 => return Err(ImageError::malformed("manifest.json", "lists no image")),
        n => {
            return Err(ImageError::malformed(
                "manifest.json",
                format!("lists {n} images; save one at a time"),
            ));
        }
    };
    let config_bytes = read_document(root, &entry.config)?;
    let layer_files = entry.layers.iter().map(|l| locate(root, l)).collect::<Result<_, _>>()?;
    Ok(DockerImage { config_bytes, layer_files })
}
