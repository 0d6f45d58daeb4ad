//! Unix socket addresses for control sockets at any path: a path longer than `sun_path` allows
//! (deep data directories do that) is reached through `/proc/self/fd/N/` of its directory.

use std::ffi::CString;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// An address for `path`, and the directory descriptor it depends on (keep it open until the
/// bind or connect is done).
pub struct SocketAddress {
    pub addr: libc::sockaddr_un,
    _dir: Option<OwnedFd>,
}

fn fill(bytes: &[u8]) -> io::Result<libc::sockaddr_un> {
    // SAFETY: an all-zero sockaddr_un is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= addr.sun_path.len() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "socket path too long"));
    }
    addr.sun_family = libc::AF_UNIX as u16;
    for (dst, b) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = *b as libc::c_char;
    }
    Ok(addr)
}

impl SocketAddress {
    pub fn new(path: &Path) -> io::Result<SocketAddress> {
        let bytes = path.as_os_str().as_bytes();
        if let Ok(addr) = fill(bytes) {
            return Ok(SocketAddress { addr, _dir: None });
        }
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "socket path too long"));
        };
        let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
        let c = CString::new(dir.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in socket path"))?;
        // SAFETY: opening a directory handle from a NUL-terminated path; checked.
        let fd =
            unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: just opened; we own it.
        let dir_fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut short = format!("/proc/self/fd/{fd}/").into_bytes();
        short.extend_from_slice(name.as_bytes());
        Ok(SocketAddress { addr: fill(&short)?, _dir: Some(dir_fd) })
    }

    pub fn len() -> libc::socklen_t {
        std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::os::unix::net::{UnixListener, UnixStream};
    use std::path::PathBuf;

    fn as_path(a: &SocketAddress) -> PathBuf {
        let bytes: Vec<u8> =
            a.addr.sun_path.iter().take_while(|c| **c != 0).map(|c| *c as u8).collect();
        PathBuf::from(OsStr::from_bytes(&bytes))
    }

    #[test]
    fn paths_longer_than_sun_path_bind_and_connect() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a".repeat(60)).join("b".repeat(60));
        std::fs::create_dir_all(&deep).unwrap();
        let path = deep.join("control.sock");
        assert!(path.as_os_str().len() > 108);
        let a = SocketAddress::new(&path).unwrap();
        let listener = UnixListener::bind(as_path(&a)).unwrap();
        assert!(path.exists(), "the socket is at the long path");
        let b = SocketAddress::new(&path).unwrap();
        UnixStream::connect(as_path(&b)).unwrap();
        assert!(listener.accept().is_ok());
    }
}
