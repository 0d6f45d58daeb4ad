//! Path resolution confined to a root directory, as if that directory were `/`: symlinks met on
//! the way are followed *inside* the root (an absolute target restarts at the root, `..` stops
//! at it), so nothing in a layer can make the unpacker touch a path outside its target.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Component, Path, PathBuf};

use crate::error::{ImageError, IoContext};

/// Symlinks followed while resolving one path, as Linux allows (ELOOP past 40).
const MAX_SYMLINKS: usize = 40;

/// The components of a tar entry's path: a leading `/` or `./` is dropped (tar writers differ),
/// while `..` is refused outright: no legitimate layer names a path above its root.
pub fn entry_components(path: &Path) -> Result<Vec<OsString>, ImageError> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n.to_os_string()),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(ImageError::UnsafeEntry {
                    path: path.display().to_string(),
                    reason: "contains '..'",
                });
            }
        }
    }
    Ok(out)
}

/// Resolves the directory named by `components` inside `root`, following symlinks within the
/// root. Missing directories are created (mode 0755) when `create`; otherwise `None` is
/// returned for a path that does not exist.
pub fn resolve_dir(
    root: &Path,
    components: &[OsString],
    create: bool,
    entry: &str,
) -> Result<Option<PathBuf>, ImageError> {
    resolve(root, components, create, false, entry)
}

/// Resolves an existing file or directory inside `root`, following every symlink within it.
pub fn resolve_existing(
    root: &Path,
    components: &[OsString],
    entry: &str,
) -> Result<Option<PathBuf>, ImageError> {
    resolve(root, components, false, true, entry)
}

fn resolve(
    root: &Path,
    components: &[OsString],
    create: bool,
    file_last: bool,
    entry: &str,
) -> Result<Option<PathBuf>, ImageError> {
    let unsafe_entry = |reason| ImageError::UnsafeEntry { path: entry.to_string(), reason };
    let mut resolved = PathBuf::new();
    let mut queue: VecDeque<OsString> = components.iter().cloned().collect();
    let mut hops = 0;
    while let Some(c) = queue.pop_front() {
        if c == OsStr::new(".") || c.is_empty() {
            continue;
        }
        if c == OsStr::new("..") {
            resolved.pop();
            continue;
        }
        let here = root.join(&resolved).join(&c);
        match fs::symlink_metadata(&here) {
            Ok(m) if m.file_type().is_symlink() => {
                hops += 1;
                if hops > MAX_SYMLINKS {
                    return Err(unsafe_entry("too many levels of symbolic links"));
                }
                let target =
                    fs::read_link(&here).ctx(|| format!("reading link {}", here.display()))?;
                if target.is_absolute() {
                    resolved = PathBuf::new();
                }
                for (i, t) in target.components().filter_map(component_name).enumerate() {
                    queue.insert(i, t);
                }
            }
            Ok(m) if m.is_dir() || (file_last && queue.is_empty()) => resolved.push(&c),
            Ok(_) => return Err(unsafe_entry("a parent directory is not a directory")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !create {
                    return Ok(None);
                }
                fs::DirBuilder::new()
                    .mode(0o755)
                    .create(&here)
                    .ctx(|| format!("creating {}", here.display()))?;
                resolved.push(&c);
            }
            Err(e) => {
                return Err(ImageError::Io {
                    context: format!("inspecting {}", here.display()),
                    source: e,
                });
            }
        }
    }
    Ok(Some(root.join(resolved)))
}

fn component_name(c: Component<'_>) -> Option<OsString> {
    match c {
        Component::Normal(n) => Some(n.to_os_string()),
        Component::ParentDir => Some(OsString::from("..")),
        Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn comps(s: &str) -> Vec<OsString> {
        entry_components(Path::new(s)).unwrap()
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        fs::create_dir_all(r.join("usr/lib")).unwrap();
        symlink("usr/lib", r.join("lib")).unwrap();
        symlink("/etc", r.join("abs")).unwrap();
        symlink("../../../../tmp", r.join("up")).unwrap();
        symlink("loop", r.join("loop")).unwrap();
        assert_eq!(
            resolve_dir(r, &comps("lib/x"), true, "").unwrap().unwrap(),
            r.join("usr/lib/x")
        );
        assert_eq!(resolve_dir(r, &comps("/abs/y"), true, "").unwrap().unwrap(), r.join("etc/y"));
        assert_eq!(resolve_dir(r, &comps("up"), true, "").unwrap().unwrap(), r.join("tmp"));
        assert!(resolve_dir(r, &comps("loop"), true, "").is_err());
        assert_eq!(resolve_dir(r, &comps("missing/z"), false, "").unwrap(), None);
        assert!(entry_components(Path::new("a/../../b")).is_err());
    }
}
