//! What a microVM boots: the project's Linux kernel, built from Debian's `linux-source-6.1`
//! with the configuration in `images/kernel/`, and an initramfs holding the guest agent as
//! PID 1; plus ext4 block images of root filesystems for container disks. Everything is
//! cached in [`cache_dir`] (under the project's [`crate::cache_root`]), keyed by its inputs.
//!
//! - [`kernel`]: configuring and building the kernel, with progress.
//! - [`agent`]: the statically linked agent binary.
//! - [`initramfs`]: the agent's initramfs.
//! - [`disk`]: directories into ext4 images.
//! - [`lock`]: one build at a time per cache.

pub mod agent;
pub mod disk;
pub mod initramfs;
pub mod kernel;
mod lock;

use std::path::PathBuf;

/// The file in the cache naming the last guest built (kernel, then initramfs, a line each):
/// what a node boots microVM pods with unless told otherwise.
pub const CURRENT: &str = "current";

/// The ELF `vmlinux` built beside `bzimage` (entered at its PVH entry point), when there is
/// one; else `bzimage` itself.
pub fn pvh_kernel(bzimage: &std::path::Path) -> PathBuf {
    let elf = bzimage.with_file_name("vmlinux");
    if elf.is_file() { elf } else { bzimage.to_owned() }
}

/// Where guest images are cached: `guest/` under the project's [`crate::cache_root`].
pub fn cache_dir() -> PathBuf {
    crate::cache_root().join("guest")
}

#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Tool(String),
    #[error("{0}")]
    Input(String),
}

impl GuestError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> GuestError {
        let what = what.into();
        move |source| GuestError::Io { what, source }
    }
}

/// How a long build reports itself.
pub trait BuildProgress: Send + Sync {
    /// A step begins (e.g. "unpacking the kernel source").
    fn step(&self, _message: &str) {}
    /// `done` of about `expected` compile steps are finished.
    fn advanced(&self, _done: u64, _expected: u64) {}
}

/// Reports through `tracing` only.
pub struct LogProgress;

impl BuildProgress for LogProgress {
    fn step(&self, message: &str) {
        tracing::info!("{message}");
    }
}

/// The kernel and initramfs of a microVM.
#[derive(Debug, Clone)]
pub struct GuestImage {
    pub kernel: PathBuf,
    pub initramfs: PathBuf,
}

/// Builds (or finds cached) the kernel and the agent's initramfs.
pub fn build(
    agent: &agent::AgentSource,
    progress: &dyn BuildProgress,
) -> Result<GuestImage, GuestError> {
    let cache = cache_dir();
    std::fs::create_dir_all(&cache)
        .map_err(GuestError::io(format!("creating {}", cache.display())))?;
    let kernel = kernel::build(&cache, progress)?;
    let agent = agent::locate(agent, progress)?;
    let initramfs = initramfs::build(&cache, &agent)?;
    let record = format!("{}\n{}\n", kernel.display(), initramfs.display());
    let tmp = cache.join(format!("{CURRENT}.tmp"));
    std::fs::write(&tmp, record)
        .and_then(|()| std::fs::rename(&tmp, cache.join(CURRENT)))
        .map_err(GuestError::io(format!("recording the guest in {}", cache.display())))?;
    Ok(GuestImage { kernel, initramfs })
}
