//! [`ImageSource`] over the node's image store (the `images` crate): what `ringfence image`
//! imports or pulls into `DATA_DIR/images` is what the CRI image service lists and runs.

use std::path::PathBuf;

use images::{ImageError, ImageInfo, ImageStore, Progress};

use super::CriError;
use super::image_source::{ImageSource, ImageSummary, ResolvedImage};

pub struct StoreImages {
    store: ImageStore,
}

impl StoreImages {
    pub fn new(store: ImageStore) -> StoreImages {
        StoreImages { store }
    }
}

fn cri_error(e: ImageError) -> CriError {
    match e {
        ImageError::NotFound(what) => CriError::NotFound(format!("image {what} not found")),
        ImageError::BadReference(..) | ImageError::BadDigest(_) => CriError::Invalid(e.to_string()),
        e => CriError::Image(e.to_string()),
    }
}

impl StoreImages {
    fn summary(&self, info: ImageInfo) -> ImageSummary {
        // An image whose config cannot be read is still listed (without its user).
        let user = self.store.config(&info.id.to_string()).ok().and_then(|c| c.user);
        ImageSummary {
            id: info.id.to_string(),
            repo_tags: info.repo_tags,
            repo_digests: info.repo_digests,
            size: info.size,
            user,
        }
    }
}

/// Pull progress as log lines: the CRI has no progress channel, so the node's log shows it.
struct LoggedProgress<'a> {
    image: &'a str,
}

impl Progress for LoggedProgress<'_> {
    fn started(&self, blob: &images::Digest, total: u64) {
        tracing::info!(image = self.image, %blob, total, "downloading layer");
    }
    fn finished(&self, blob: &images::Digest) {
        tracing::debug!(image = self.image, %blob, "layer stored");
    }
    fn step(&self, message: &str) {
        tracing::info!(image = self.image, "{message}");
    }
}

impl ImageSource for StoreImages {
    fn resolve(&self, image: &str) -> Result<ResolvedImage, CriError> {
        let info = self.store.status(image).map_err(cri_error)?.ok_or_else(|| {
            CriError::NotFound(format!("image {image} is not present on the node"))
        })?;
        let reference = info.id.to_string();
        let config = self.store.config(&reference).map_err(cri_error)?;
        Ok(ResolvedImage {
            id: reference.clone(),
            rootfs: self.store.rootfs(&reference).map_err(cri_error)?,
            entrypoint: config.entrypoint,
            cmd: config.cmd,
            env: config.env,
            working_dir: config.working_dir.unwrap_or_default(),
            user: config.user.unwrap_or_default(),
        })
    }

    /// Runs on a blocking thread of the server's runtime (see `server::blocking`).
    fn pull(&self, image: &str) -> Result<String, CriError> {
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| CriError::Image("pulling needs the server's async runtime".into()))?;
        let progress = LoggedProgress { image };
        let info = handle.block_on(self.store.pull(image, &progress)).map_err(cri_error)?;
        Ok(info.id.to_string())
    }

    fn list(&self) -> Result<Vec<ImageSummary>, CriError> {
        Ok(self.store.list().map_err(cri_error)?.into_iter().map(|i| self.summary(i)).collect())
    }

    fn status(&self, image: &str) -> Result<Option<ImageSummary>, CriError> {
        Ok(self.store.status(image).map_err(cri_error)?.map(|i| self.summary(i)))
    }

    fn remove(&self, image: &str) -> Result<(), CriError> {
        match self.store.remove(image) {
            // CRI RemoveImage is idempotent.
            Err(ImageError::NotFound(_)) => Ok(()),
            r => r.map_err(cri_error),
        }
    }

    fn usage(&self) -> Result<(u64, u64), CriError> {
        let u = self.store.usage().map_err(cri_error)?;
        Ok((u.bytes, u.inodes))
    }

    fn mountpoint(&self) -> PathBuf {
        self.store.dir().to_path_buf()
    }
}
