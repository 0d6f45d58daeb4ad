//! Bind mounts the runtime makes on the host (a microVM pod's shared directory), and finding
//! what is mounted under a sandbox's directory to take it down, also after a restart.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

fn cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::ErrorKind::InvalidInput.into())
}

pub fn mount(source: &Path, target: &Path, flags: libc::c_ulong) -> io::Result<()> {
    let (s, t) = (cstr(source)?, cstr(target)?);
    // SAFETY: NUL-terminated paths that outlive the call; no file system type or data.
    let r =
        unsafe { libc::mount(s.as_ptr(), t.as_ptr(), std::ptr::null(), flags, std::ptr::null()) };
    if r != 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// Unmounts `target` lazily; a path that is not mounted is fine.
pub fn unmount(target: &Path) {
    if let Ok(t) = cstr(target) {
        // SAFETY: a NUL-terminated path; failure (not mounted) is ignored on purpose.
        unsafe { libc::umount2(t.as_ptr(), libc::MNT_DETACH) };
    }
}

/// `source` bound at `target` (a directory made for it), read-only when asked.
pub fn bind(source: &Path, target: &Path, read_only: bool) -> io::Result<()> {
    std::fs::create_dir_all(target)?;
    mount(source, target, libc::MS_BIND | libc::MS_REC)?;
    if read_only {
        let flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_REC;
        if let Err(e) = mount(Path::new("none"), target, flags) {
            unmount(target);
            return Err(e);
        }
    }
    Ok(())
}

/// Every mount point at or under `dir`, deepest first (from /proc/self/mountinfo).
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape)
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

/// mountinfo escapes spaces, tabs, newlines and backslashes as octal.
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let code: String = chars.by_ref().take(3).collect();
            match u8::from_str_radix(&code, 8) {
                Ok(b) => out.push(char::from(b)),
                Err(_) => {
                    out.push('\\');
                    out.push_str(&code);
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(unescape(r"/a\040b"), "/a b");
        assert_eq!(unescape(r"/x\134y"), r"/x\y");
        assert_eq!(unescape("/plain"), "/plain");
    }

    #[test]
    fn binds_are_read_only_when_asked_and_found_for_release() {
        let src = tempfile::tempdir().unwrap();
        std::fs::write(src.path().join("f"), "data").unwrap();
        let top = tempfile::tempdir().unwrap();
        let (rw, ro) = (top.path().join("c/rw"), top.path().join("c/ro"));
        bind(src.path(), &rw, false).unwrap();
        bind(src.path(), &ro, true).unwrap();
        assert_eq!(std::fs::read_to_string(ro.join("f")).unwrap(), "data");
        assert!(std::fs::write(ro.join("g"), "x").is_err(), "read-only");
        std::fs::write(rw.join("g"), "x").unwrap();
        assert!(src.path().join("g").exists(), "writes reach the source");
        let found = mounts_under(&top.path().join("c"));
        assert_eq!(found.len(), 2, "{found:?}");
        for m in found {
            unmount(&m);
        }
        assert!(mounts_under(top.path()).is_empty());
    }
}
