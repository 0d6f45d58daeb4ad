//! Every way an image operation can fail.

use std::path::PathBuf;

use crate::digest::Digest;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid image reference {0:?}: {1}")]
    BadReference(String, &'static str),
    #[error("invalid digest {0:?}: expected sha256:<64 lowercase hex digits>")]
    BadDigest(String),
    #[error("content of {expected} does not match its digest (got {actual})")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("{what} does not have the {expected} bytes its descriptor says (got {actual} or more)")]
    SizeMismatch { what: String, expected: u64, actual: u64 },
    #[error("unsupported media type {0:?}")]
    UnsupportedMediaType(String),
    #[error("malformed {what}: {detail}")]
    Malformed { what: String, detail: String },
    #[error("{0} is missing from the image")]
    MissingBlob(String),
    #[error(
        "{0} is neither an OCI image layout nor a docker-archive (no index.json or manifest.json)"
    )]
    UnknownArchive(PathBuf),
    #[error("no manifest for linux/amd64 in the image index")]
    NoMatchingPlatform,
    #[error("the image is for {0}, not linux/amd64")]
    WrongPlatform(String),
    #[error("layer entry {path:?} rejected: {reason}")]
    UnsafeEntry { path: String, reason: &'static str },
    #[error("image {0:?} not found")]
    NotFound(String),
    #[error("registry {registry}: {detail}")]
    Registry { registry: String, detail: String },
    #[error("content of {0} was removed while the image was being stored; try again")]
    RemovedConcurrently(Digest),
}

impl ImageError {
    pub(crate) fn malformed(what: impl Into<String>, detail: impl ToString) -> ImageError {
        ImageError::Malformed { what: what.into(), detail: detail.to_string() }
    }
}

/// Adds what was being done to an `io::Error`.
pub(crate) trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, ImageError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, ImageError> {
        self.map_err(|source| ImageError::Io { context: context(), source })
    }
}
