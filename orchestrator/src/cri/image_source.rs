//! The seam between the runtime and the node's images: [`ImageSource`] resolves what a
//! container runs from and lists what the CRI image service shows. The runtime knows only this
//! trait; [`super::store_images`] implements it over the `images` crate's store.

use std::path::PathBuf;

use super::CriError;

/// What a container needs from its image.
#[derive(Clone, Debug, Default)]
pub struct ResolvedImage {
    /// Image id (config digest).
    pub id: String,
    /// The unpacked, read-only root filesystem.
    pub rootfs: PathBuf,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    /// The config's `User` (`name`, `uid`, `user:group`; empty for root).
    pub user: String,
}

/// An image as the CRI image service lists it.
#[derive(Clone, Debug, Default)]
pub struct ImageSummary {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub size: u64,
    /// The config's `User`, when it names one.
    pub user: Option<String>,
}

pub trait ImageSource: Send + Sync {
    /// A locally present image by name, digest or id.
    fn resolve(&self, image: &str) -> Result<ResolvedImage, CriError>;
    /// Fetches an image from its registry; returns its id.
    fn pull(&self, image: &str) -> Result<String, CriError>;
    fn list(&self) -> Result<Vec<ImageSummary>, CriError>;
    fn status(&self, image: &str) -> Result<Option<ImageSummary>, CriError>;
    fn remove(&self, image: &str) -> Result<(), CriError>;
    /// Bytes and inodes the store uses.
    fn usage(&self) -> Result<(u64, u64), CriError>;
    /// Where the store keeps its data (CRI ImageFsInfo reports it).
    fn mountpoint(&self) -> PathBuf;
}
