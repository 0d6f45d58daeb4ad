//! The microVM's initramfs: the agent as `/init`, a console node, the mount points it uses.

use std::path::{Path, PathBuf};

use ring::digest::{SHA256, digest};

use super::GuestError;
use crate::cpio::Cpio;

/// Writes (once per agent binary) and returns the initramfs holding `agent`.
pub fn build(cache: &Path, agent: &Path) -> Result<PathBuf, GuestError> {
    let body =
        std::fs::read(agent).map_err(GuestError::io(format!("reading {}", agent.display())))?;
    let hex: String =
        digest(&SHA256, &body).as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect();
    let path = cache.join(format!("initramfs-{hex}.cpio"));
    if path.exists() {
        return Ok(path);
    }
    let mut c = Cpio::new();
    for d in ["dev", "proc", "sys", "run", "tmp"] {
        c.dir(d);
    }
    // The kernel opens /dev/console for init before devtmpfs is mounted.
    c.char_device("dev/console", 5, 1);
    c.file("init", 0o755, &body);
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, c.finish())
        .map_err(GuestError::io(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, &path).map_err(GuestError::io(format!("storing {}", path.display())))?;
    Ok(path)
}
