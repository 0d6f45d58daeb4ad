//! Applies one layer (a tar stream) on top of a directory: regular files, directories, symlinks,
//! hard links, and the OCI whiteouts `.wh.<name>` (delete from lower layers) and `.wh..wh..opq`
//! (hide everything lower layers put in that directory). Paths never leave the root: see
//! `confine`. Device nodes and FIFOs are skipped: containers get theirs from the runtime.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::confine::{entry_components, resolve_dir};
use crate::error::{ImageError, IoContext};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// What one layer contributed.
#[derive(Debug, Default, Clone, Copy)]
pub struct LayerStats {
    pub entries: u64,
    pub bytes: u64,
}

pub fn apply_layer(root: &Path, reader: &mut dyn Read) -> Result<LayerStats, ImageError> {
    let chown = is_root();
    let mut archive = tar::Archive::new(reader);
    let mut stats = LayerStats::default();
    // Paths this layer wrote: an opaque marker hides lower layers' entries, not these.
    let mut written: HashSet<PathBuf> = HashSet::new();
    let tar_err = |e: io::Error| ImageError::malformed("layer tarball", e);
    for entry in archive.entries().map_err(tar_err)? {
        let mut entry = entry.map_err(tar_err)?;
        let raw = entry.path().map_err(tar_err)?.into_owned();
        let shown = raw.display().to_string();
        let comps = entry_components(&raw)?;
        let Some((name, parents)) = comps.split_last() else {
            continue; // the root itself ("./")
        };
        let name_bytes = name.as_bytes();
        if name_bytes == OPAQUE.as_bytes() {
            if let Some(dir) = resolve_dir(root, parents, true, &shown)? {
                clear_lower(&dir, &written)?;
            }
            continue;
        }
        if let Some(hidden) = name_bytes.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            if hidden.is_empty() || hidden == b"." || hidden == b".." {
                return Err(ImageError::UnsafeEntry {
                    path: shown,
                    reason: "whiteout of '.' or '..'",
                });
            }
            if let Some(dir) = resolve_dir(root, parents, false, &shown)? {
                remove_any(&dir.join(OsStr::from_bytes(hidden)))?;
            }
            continue;
        }
        let dir = resolve_dir(root, parents, true, &shown)?.unwrap_or_else(|| root.to_path_buf());
        let dest = dir.join(name);
        let header = entry.header();
        let mode = header.mode().map_err(tar_err)? & 0o7777;
        // Some writers leave the owner fields blank: root owns those files.
        let (uid, gid) = (header.uid().unwrap_or(0), header.gid().unwrap_or(0));
        let mtime = header.mtime().ok();
        let kind = header.entry_type();
        let existing = fs::symlink_metadata(&dest).ok();
        if kind.is_dir() {
            match existing {
                Some(m) if m.is_dir() => {}
                Some(_) => {
                    remove_any(&dest)?;
                    mkdir(&dest)?;
                }
                None => mkdir(&dest)?,
            }
        } else {
            if existing.is_some() {
                remove_any(&dest)?;
            }
            // The tar reader expands GNU sparse files into their full contents.
            if kind.is_file() || kind == tar::EntryType::GNUSparse {
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&dest)
                    .ctx(|| format!("creating {}", dest.display()))?;
                stats.bytes += io::copy(&mut entry, &mut file).map_err(tar_err)?;
                if let Some(t) = mtime {
                    let _ = file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(t));
                }
            } else if kind.is_symlink() {
                let target = entry.link_name().map_err(tar_err)?.ok_or_else(|| {
                    ImageError::malformed("layer tarball", format!("symlink {shown} has no target"))
                })?;
                // The target is stored as written: it is only ever resolved inside the root.
                symlink(&target, &dest).ctx(|| format!("creating symlink {}", dest.display()))?;
            } else if kind.is_hard_link() {
                let target = entry.link_name().map_err(tar_err)?.ok_or_else(|| {
                    ImageError::malformed(
                        "layer tarball",
                        format!("hard link {shown} has no target"),
                    )
                })?;
                let target_comps = entry_components(&target)?;
                let Some((tname, tparents)) = target_comps.split_last() else {
                    return Err(ImageError::UnsafeEntry {
                        path: shown,
                        reason: "hard link to the root",
                    });
                };
                let source = resolve_dir(root, tparents, false, &shown)?
                    .map(|d| d.join(tname))
                    .filter(|p| fs::symlink_metadata(p).is_ok_and(|m| !m.is_dir()))
                    .ok_or_else(|| {
                        ImageError::malformed(
                            "layer tarball",
                            format!("hard link {shown} points to missing {}", target.display()),
                        )
                    })?;
                fs::hard_link(&source, &dest).ctx(|| format!("linking {}", dest.display()))?;
                stats.entries += 1;
                written.insert(dest);
                continue; // a hard link shares its target's owner and mode
            } else {
                tracing::debug!(entry = %shown, kind = ?kind, "skipping special file");
                continue;
            }
        }
        if chown {
            std::os::unix::fs::lchown(&dest, Some(uid as u32), Some(gid as u32))
                .ctx(|| format!("chown {}", dest.display()))?;
        }
        if !kind.is_symlink() {
            fs::set_permissions(&dest, fs::Permissions::from_mode(mode))
                .ctx(|| format!("chmod {}", dest.display()))?;
        }
        stats.entries += 1;
        written.insert(dest);
    }
    Ok(stats)
}

fn mkdir(path: &Path) -> Result<(), ImageError> {
    fs::DirBuilder::new().mode(0o755).create(path).ctx(|| format!("creating {}", path.display()))
}

/// Removes a file, symlink (never its target) or directory tree; absent is fine.
fn remove_any(path: &Path) -> Result<(), ImageError> {
    let result = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    result.ctx(|| format!("removing {}", path.display()))
}

fn clear_lower(dir: &Path, written: &HashSet<PathBuf>) -> Result<(), ImageError> {
    for child in fs::read_dir(dir).ctx(|| format!("listing {}", dir.display()))? {
        let path = child.ctx(|| format!("listing {}", dir.display()))?.path();
        if !written.contains(&path) {
            remove_any(&path)?;
        }
    }
    Ok(())
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
