//! The content-addressed blob store: `blobs/sha256/<hex>`, each file verified against its name
//! before it becomes visible (written to a temporary file, then renamed into place).

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::PathBuf;

use tempfile::NamedTempFile;

use crate::digest::{Digest, Hasher};
use crate::error::{ImageError, IoContext};

/// Manifests, indexes and configs larger than this are refused (registries cap them at 4 MiB).
pub const MAX_DOCUMENT: u64 = 4 << 20;

#[derive(Clone, Debug)]
pub struct BlobStore {
    dir: PathBuf,
    tmp: PathBuf,
}

impl BlobStore {
    pub fn open(dir: PathBuf, tmp: PathBuf) -> Result<BlobStore, ImageError> {
        fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
        Ok(BlobStore { dir, tmp })
    }

    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(digest.hex())
    }

    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    pub fn open_blob(&self, digest: &Digest) -> Result<File, ImageError> {
        File::open(self.path(digest)).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ImageError::MissingBlob(digest.to_string()),
            _ => ImageError::Io { context: format!("opening blob {digest}"), source: e },
        })
    }

    /// Reads a small document (manifest, config), checking it still matches its digest.
    pub fn read_document(&self, digest: &Digest) -> Result<Vec<u8>, ImageError> {
        let mut bytes = Vec::new();
        self.open_blob(digest)?
            .take(MAX_DOCUMENT + 1)
            .read_to_end(&mut bytes)
            .ctx(|| format!("reading blob {digest}"))?;
        if bytes.len() as u64 > MAX_DOCUMENT {
            return Err(ImageError::malformed(format!("document {digest}"), "larger than 4 MiB"));
        }
        check(digest, &Digest::of(&bytes))?;
        Ok(bytes)
    }

    /// Starts writing a blob whose digest (and maybe size) is known in advance.
    pub fn writer(&self, expected: &Digest, size: Option<u64>) -> Result<BlobWriter, ImageError> {
        let file = NamedTempFile::with_prefix_in("blob-", &self.tmp)
            .ctx(|| format!("creating a file in {}", self.tmp.display()))?;
        Ok(BlobWriter {
            file,
            hasher: Hasher::new(),
            expected: expected.clone(),
            size,
            target: self.path(expected),
        })
    }

    /// Copies `reader` into the store as `expected`, failing (and storing nothing) on a mismatch.
    pub fn write_from(
        &self,
        reader: &mut dyn Read,
        expected: &Digest,
        size: Option<u64>,
    ) -> Result<(), ImageError> {
        if self.contains(expected) {
            return Ok(());
        }
        let mut w = self.writer(expected, size)?;
        if let Err(e) = io::copy(reader, &mut w) {
            return Err(w.error(e));
        }
        w.commit()
    }

    /// Copies `reader` into the store under the digest of what it yields.
    pub fn write_any(&self, reader: &mut dyn Read) -> Result<(Digest, u64), ImageError> {
        let mut file = NamedTempFile::with_prefix_in("blob-", &self.tmp)
            .ctx(|| format!("creating a file in {}", self.tmp.display()))?;
        let mut w =
            crate::digest::HashingWriter { inner: file.as_file_mut(), hasher: Hasher::new() };
        io::copy(reader, &mut w).ctx(|| "copying a blob".to_string())?;
        let size = w.hasher.len();
        let digest = std::mem::take(&mut w.hasher).finish();
        file.as_file().sync_data().ctx(|| format!("syncing blob {digest}"))?;
        file.persist(self.path(&digest)).map_err(|e| ImageError::Io {
            context: format!("storing blob {digest}"),
            source: e.error,
        })?;
        Ok((digest, size))
    }

    /// Stores bytes under their own digest.
    pub fn write_bytes(&self, bytes: &[u8]) -> Result<Digest, ImageError> {
        let digest = Digest::of(bytes);
        self.write_from(&mut &bytes[..], &digest, Some(bytes.len() as u64))?;
        Ok(digest)
    }

    /// Removes blobs that `keep` rejects and that were last written over `age` ago.
    pub fn sweep(
        &self,
        keep: impl Fn(&Digest) -> bool,
        age: std::time::Duration,
    ) -> Result<(), ImageError> {
        let now = std::time::SystemTime::now();
        for entry in
            fs::read_dir(&self.dir).ctx(|| format!("listing {}", self.dir.display()))?.flatten()
        {
            let Some(digest) = entry.file_name().to_str().and_then(Digest::from_hex) else {
                continue;
            };
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).unwrap_or_default() > age);
            if old && !keep(&digest) {
                tracing::debug!(blob = %digest, "sweeping unreferenced blob");
                self.remove(&digest)?;
            }
        }
        Ok(())
    }

    pub fn remove(&self, digest: &Digest) -> Result<(), ImageError> {
        match fs::remove_file(self.path(digest)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(ImageError::Io { context: format!("removing blob {digest}"), source: e })
            }
            _ => Ok(()),
        }
    }
}

/// A blob being written; nothing is visible in the store until `commit` verified it.
pub struct BlobWriter {
    file: NamedTempFile,
    hasher: Hasher,
    expected: Digest,
    size: Option<u64>,
    target: PathBuf,
}

/// More bytes arrived than the descriptor announced.
#[derive(Debug)]
struct TooLong;

impl std::fmt::Display for TooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("more bytes than the descriptor says")
    }
}

impl std::error::Error for TooLong {}

impl BlobWriter {
    /// Explains a failed write: too long for the descriptor, or an I/O error.
    pub fn error(&self, e: io::Error) -> ImageError {
        if e.get_ref().is_some_and(|inner| inner.is::<TooLong>()) {
            ImageError::SizeMismatch {
                what: format!("blob {}", self.expected),
                expected: self.size.unwrap_or(0),
                actual: self.hasher.len() + 1,
            }
        } else {
            ImageError::Io { context: format!("writing blob {}", self.expected), source: e }
        }
    }

    pub fn commit(self) -> Result<(), ImageError> {
        let BlobWriter { file, hasher, expected, size, target } = self;
        if let Some(size) = size
            && size != hasher.len()
        {
            return Err(ImageError::SizeMismatch {
                what: format!("blob {expected}"),
                expected: size,
                actual: hasher.len(),
            });
        }
        check(&expected, &hasher.finish())?;
        file.as_file().sync_data().ctx(|| format!("syncing blob {expected}"))?;
        file.persist(&target).map_err(|e| ImageError::Io {
            context: format!("storing blob {expected}"),
            source: e.error,
        })?;
        Ok(())
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(size) = self.size
            && self.hasher.len() + buf.len() as u64 > size
        {
            return Err(io::Error::other(TooLong));
        }
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

pub fn check(expected: &Digest, actual: &Digest) -> Result<(), ImageError> {
    if expected == actual {
        Ok(())
    } else {
        Err(ImageError::DigestMismatch { expected: expected.clone(), actual: actual.clone() })
    }
}
