//! Root filesystems: every layer of an image unpacked in order into one directory, named by the
//! chain ID of its layers (so images with the same layers share it). Built in a private
//! temporary directory and renamed into place only when complete.

use std::fs;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::blobs::{BlobStore, check};
use crate::digest::{Digest, HashingReader};
use crate::error::{ImageError, IoContext};
use crate::spec::{Compression, Descriptor};
use crate::unpack::apply_layer;

/// The OCI chain ID of a stack of layers (by their uncompressed digests, bottom first).
pub fn chain_id(diff_ids: &[Digest]) -> Option<Digest> {
    let mut iter = diff_ids.iter();
    let mut chain = iter.next()?.clone();
    for d in iter {
        chain = Digest::of(format!("{chain} {d}").as_bytes());
    }
    Some(chain)
}

/// A compressed layer as a stream of its tar bytes.
pub fn decompress<'a>(
    reader: impl Read + 'a,
    compression: Compression,
) -> Result<Box<dyn Read + 'a>, ImageError> {
    Ok(match compression {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(
            ruzstd::decoding::StreamingDecoder::new(reader)
                .map_err(|e| ImageError::malformed("zstd layer", e))?,
        ),
    })
}

/// Unpacks `layers` (with their expected uncompressed digests) into `target`, unless a complete
/// tree is already there. Returns once `target` exists.
pub fn build(
    blobs: &BlobStore,
    layers: &[(Descriptor, Digest)],
    target: &Path,
    tmp: &Path,
) -> Result<(), ImageError> {
    if target.is_dir() {
        return Ok(());
    }
    let staging = tempfile::Builder::new()
        .prefix("rootfs-")
        .tempdir_in(tmp)
        .ctx(|| format!("creating a directory in {}", tmp.display()))?;
    fs::set_permissions(staging.path(), fs::Permissions::from_mode(0o755))
        .ctx(|| "chmod rootfs".to_string())?;
    for (i, (layer, diff_id)) in layers.iter().enumerate() {
        let compression = Compression::of_layer(&layer.media_type)?;
        let file = blobs.open_blob(&layer.digest)?;
        let mut tar =
            HashingReader::new(decompress(BufReader::with_capacity(1 << 16, file), compression)?);
        let stats =
            apply_layer(staging.path(), &mut tar).map_err(|e| in_layer(&layer.digest, e))?;
        let (actual, _) =
            tar.finish().map_err(|e| in_layer(&layer.digest, ImageError::malformed("layer", e)))?;
        check(diff_id, &actual).map_err(|e| in_layer(&layer.digest, e))?;
        tracing::debug!(layer = %layer.digest, index = i, entries = stats.entries, bytes = stats.bytes, "layer unpacked");
    }
    match fs::rename(staging.path(), target) {
        Ok(()) => {
            let _ = staging.keep();
            Ok(())
        }
        // Someone else finished the same tree first; theirs is as good as ours.
        Err(_) if target.is_dir() => Ok(()),
        Err(e) => Err(ImageError::Io {
            context: format!("renaming the root filesystem to {}", target.display()),
            source: e,
        }),
    }
}

fn in_layer(digest: &Digest, e: ImageError) -> ImageError {
    match e {
        ImageError::Malformed { what, detail } => {
            ImageError::Malformed { what: format!("{what} (layer {digest})"), detail }
        }
        other => other,
    }
}

/// Removes a root filesystem: renamed away first so it vanishes at once, then deleted.
pub fn remove(target: &Path, tmp: &Path) -> Result<(), ImageError> {
    if !target.exists() {
        return Ok(());
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("rootfs");
    let doomed: PathBuf = tmp.join(format!("doomed-{name}-{}-{nanos}", std::process::id()));
    fs::rename(target, &doomed).ctx(|| format!("moving {} away", target.display()))?;
    match fs::remove_dir_all(&doomed) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(ImageError::Io { context: format!("removing {}", doomed.display()), source: e })
        }
        _ => Ok(()),
    }
}
