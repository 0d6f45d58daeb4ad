//! The container's root filesystem: containerd passes the snapshot's mounts (an overlay,
//! a bind...), which the shim mounts at the bundle's `rootfs` for the container's Gofer to
//! serve, and unmounts when the task is deleted.

use std::path::Path;

use containerd_shim::protos::api::Mount;

use super::error::ShimError;

/// Mounts `mounts` in order at `target` (nothing to do when containerd passed none: the
/// rootfs is then already in place).
pub fn mount(mounts: &[Mount], target: &Path) -> Result<(), ShimError> {
    if mounts.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(target)?;
    for m in mounts {
        mount_one(m, target)
            .map_err(|e| ShimError::Invalid(format!("mounting the rootfs ({}): {e}", m.type_)))?;
    }
    Ok(())
}

/// Mount flags named in a mount's options; the other options are the filesystem's data.
fn flags_and_data(options: &[String]) -> (libc::c_ulong, String) {
    let mut flags = 0;
    let mut data = Vec::new();
    for o in options {
        match o.as_str() {
            "ro" => flags |= libc::MS_RDONLY,
            "rw" | "defaults" => {}
            "nosuid" => flags |= libc::MS_NOSUID,
            "nodev" => flags |= libc::MS_NODEV,
            "noexec" => flags |= libc::MS_NOEXEC,
            "bind" => flags |= libc::MS_BIND,
            "rbind" => flags |= libc::MS_BIND | libc::MS_REC,
            other => data.push(other),
        }
    }
    (flags, data.join(","))
}

fn mount_one(m: &Mount, target: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let cstr = |s: &[u8]| CString::new(s).map_err(std::io::Error::other);
    let (flags, data) = flags_and_data(&m.options);
    let source = cstr(m.source.as_bytes())?;
    let fstype = cstr(m.type_.as_bytes())?;
    let target = cstr(target.as_os_str().as_bytes())?;
    let data = cstr(data.as_bytes())?;
    // SAFETY: mount(2) with NUL-terminated strings that live across the call.
    let rc = unsafe {
        libc::mount(source.as_ptr(), target.as_ptr(), fstype.as_ptr(), flags, data.as_ptr().cast())
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Unmounts the rootfs at `target` (lazily: a Gofer may still be letting go).
pub fn unmount(target: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(target.as_os_str().as_bytes()) else { return };
    // Mounts stacked by several rootfs mounts come off one at a time.
    loop {
        // SAFETY: umount2 with a NUL-terminated path; no memory is handed over.
        if unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINVAL) && e.raw_os_error() != Some(libc::ENOENT) {
                tracing::warn!("unmounting {}: {e}", target.display());
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_split_from_the_filesystem_data() {
        let opts = ["ro", "rbind", "lowerdir=/a:/b", "index=off"].map(String::from);
        let (flags, data) = flags_and_data(&opts);
        assert_eq!(flags, libc::MS_RDONLY | libc::MS_BIND | libc::MS_REC);
        assert_eq!(data, "lowerdir=/a:/b,index=off");
    }
}
