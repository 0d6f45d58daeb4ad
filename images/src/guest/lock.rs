//! A file lock, so that parallel tests and commands build each cached thing once.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

use super::GuestError;

pub struct Lock(#[allow(dead_code)] File);

impl Lock {
    /// Blocks until `path` (created if needed) is locked; released on drop.
    pub fn exclusive(path: &Path) -> Result<Lock, GuestError> {
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(GuestError::io(format!("opening {}", path.display())))?;
        // SAFETY: flock on a descriptor we own; no memory effects.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(GuestError::io(format!("locking {}", path.display()))(
                std::io::Error::last_os_error(),
            ));
        }
        Ok(Lock(f))
    }
}
