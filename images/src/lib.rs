//! OCI images for the node: a content-addressed store of blobs, images imported from local
//! archives or pulled from registries, and their layers unpacked into shared root filesystems.
//! Also what microVMs boot: the guest kernel, the agent's initramfs, ext4 root filesystems
//! ([`guest`], built with the initramfs writer [`cpio`]), cached under [`cache_root`].

mod archive;
mod blobs;
mod catalog;
mod confine;
pub mod cpio;
mod digest;
mod error;
pub mod guest;
mod import;
mod progress;
mod pull;
mod reference;
mod registry;
mod rootfs;
mod spec;
mod store;
mod unpack;

pub use digest::Digest;
pub use error::ImageError;
pub use progress::{NoProgress, Progress};
pub use reference::Reference;
pub use store::{FsUsage, ImageConfig, ImageInfo, ImageStore};

/// Where a node keeps its images inside its data directory.
pub const DATA_SUBDIR: &str = "images";

/// The project's cache on this machine, `~/.cache/ringfence`: what is built or fetched once
/// and kept between runs (guest kernels and initramfs, the test lane's files, build trees).
/// Every cache directory is a subdirectory of this one.
pub fn cache_root() -> std::path::PathBuf {
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    home.unwrap_or_else(|| "/root".into()).join(".cache/ringfence")
}
