//! The kernel the lane's outer VM boots: Debian's `linux-image-cloud-amd64`, fetched with
//! `apt-get download` and unpacked with `dpkg-deb` into the cache (nothing is installed on the
//! host), once per kernel version.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

const META_PACKAGE: &str = "linux-image-cloud-amd64";

pub struct LaneKernel {
    pub version: String,
    pub vmlinuz: PathBuf,
    /// `lib/modules/<version>/kernel` of the package.
    pub modules: PathBuf,
}

/// The versioned package the meta package depends on (e.g. linux-image-6.1.0-56-cloud-amd64).
fn package_name() -> anyhow::Result<String> {
    let query = || Command::new("apt-cache").args(["depends", META_PACKAGE]).output();
    let mut out = query().context("running apt-cache")?;
    if !out.status.success() || out.stdout.is_empty() {
        tracing::info!("updating the package lists for {META_PACKAGE}");
        let _ = Command::new("apt-get")
            .args(["update", "-q"])
            .stdout(std::process::Stdio::null())
            .status();
        out = query().context("running apt-cache")?;
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|p| p.starts_with("linux-image-"))
        .map(str::to_owned)
        .with_context(|| format!("{META_PACKAGE} names no kernel package (apt-cache depends)"))
}

/// Fetches (once) and returns the kernel, under `cache`.
pub fn fetch(cache: &Path) -> anyhow::Result<LaneKernel> {
    let package = package_name()?;
    let version = package.trim_start_matches("linux-image-").to_owned();
    let dir = cache.join("kernels").join(&package);
    let kernel = LaneKernel {
        vmlinuz: dir.join(format!("root/boot/vmlinuz-{version}")),
        modules: dir.join(format!("root/lib/modules/{version}/kernel")),
        version,
    };
    let done = dir.join("unpacked");
    if done.exists() {
        return Ok(kernel);
    }
    std::fs::create_dir_all(&dir)?;
    tracing::info!("downloading {package} for the nested-SVM lane");
    // Root downloads into the cache itself (not as the _apt sandbox user); progress stays
    // off stdout, which may be a caller's.
    let st = Command::new("apt-get")
        .args(["download", "-q", "-o", "APT::Sandbox::User=root", &package])
        .current_dir(&dir)
        .stdout(std::process::Stdio::null())
        .status()
        .context("running apt-get download")?;
    if !st.success() {
        bail!("apt-get download {package} failed");
    }
    let deb = std::fs::read_dir(&dir)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .with_context(|| format!("no .deb for {package} in {}", dir.display()))?;
    tracing::info!("unpacking {}", deb.display());
    let st = Command::new("dpkg-deb").arg("-x").arg(&deb).arg(dir.join("root")).status()?;
    if !st.success() || !kernel.vmlinuz.exists() {
        bail!("unpacking {} gave no {}", deb.display(), kernel.vmlinuz.display());
    }
    std::fs::remove_file(&deb)?;
    std::fs::write(&done, &kernel.version)?;
    Ok(kernel)
}
