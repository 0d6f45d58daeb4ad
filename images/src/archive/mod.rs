//! Local image archives: an OCI image layout or a `docker save` archive, as a directory or a
//! tarball (plain or gzip). A tarball is first unpacked into the store's `tmp/` with the same
//! confined unpacker as layers; then both kinds are read as directories.

mod docker;
mod oci_layout;

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use crate::blobs::MAX_DOCUMENT;
use crate::confine::{entry_components, resolve_existing};
use crate::error::{ImageError, IoContext};
use crate::spec::Manifest;

/// An image found in an archive, before anything is stored.
pub struct LocalImage {
    pub manifest_bytes: Vec<u8>,
    pub manifest: Manifest,
    pub config_bytes: Vec<u8>,
    /// The layers' files, in the manifest's order.
    pub layer_files: Vec<PathBuf>,
}

/// Finds the image in an archive directory.
pub fn read(root: &Path) -> Result<Archive, ImageError> {
    if root.join("index.json").is_file() {
        oci_layout::read(root).map(|i| Archive::Oci(Box::new(i)))
    } else if root.join("manifest.json").is_file() {
        docker::read(root).map(Archive::Docker)
    } else {
        Err(ImageError::UnknownArchive(root.to_path_buf()))
    }
}

pub enum Archive {
    Oci(Box<LocalImage>),
    /// A `docker save` archive has no manifest: one is made when its layers are stored.
    Docker(DockerImage),
}

pub use docker::DockerImage;

/// Unpacks an archive tarball (plain or gzip) into `staging`.
pub fn stage_tarball(path: &Path, staging: &Path) -> Result<(), ImageError> {
    let file = File::open(path).ctx(|| format!("opening {}", path.display()))?;
    let mut reader = BufReader::new(file);
    let compression = crate::spec::Compression::sniff(&mut reader)
        .ctx(|| format!("reading {}", path.display()))?;
    let mut tar = crate::rootfs::decompress(reader, compression)?;
    crate::unpack::apply_layer(staging, &mut tar).map_err(|e| match e {
        ImageError::Malformed { detail, .. } => {
            ImageError::malformed(format!("archive {}", path.display()), detail)
        }
        other => other,
    })?;
    Ok(())
}

/// A path named inside the archive, resolved without leaving it.
pub fn locate(root: &Path, name: &str) -> Result<PathBuf, ImageError> {
    let comps = entry_components(Path::new(name))?;
    resolve_existing(root, &comps, name)?
        .filter(|p| p.is_file())
        .ok_or_else(|| ImageError::MissingBlob(name.to_string()))
}

/// Reads a small JSON document named inside the archive.
pub fn read_document(root: &Path, name: &str) -> Result<Vec<u8>, ImageError> {
    let path = locate(root, name)?;
    let mut bytes = Vec::new();
    File::open(&path)
        .and_then(|f| f.take(MAX_DOCUMENT + 1).read_to_end(&mut bytes))
        .ctx(|| format!("reading {}", path.display()))?;
    if bytes.len() as u64 > MAX_DOCUMENT {
        return Err(ImageError::malformed(name, "larger than 4 MiB"));
    }
    Ok(bytes)
}
