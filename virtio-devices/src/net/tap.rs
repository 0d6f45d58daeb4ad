//! A host tap device (/dev/net/tun) with virtio-net headers, moving frames straight between
//! the tap and guest memory.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

/// The header every frame carries (virtio 1.x: `virtio_net_hdr_v1`, 12 bytes).
pub const VNET_HDR_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum TapError {
    #[error("the tap name {0:?} is empty or longer than 15 bytes")]
    Name(String),
    #[error("opening /dev/net/tun: {0}")]
    Open(std::io::Error),
    #[error("attaching to tap {name}: {source}")]
    Attach { name: String, source: std::io::Error },
    #[error("configuring tap {name}: {source}")]
    Configure { name: String, source: std::io::Error },
}

pub struct Tap {
    file: File,
    name: String,
}

#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

impl Tap {
    /// Opens (creating it if it does not exist and we may) the tap `name`, non-blocking,
    /// with virtio-net headers.
    pub fn open(name: &str) -> Result<Tap, TapError> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('\0') {
            return Err(TapError::Name(name.into()));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(TapError::Open)?;
        let mut req = IfReq { name: [0; libc::IFNAMSIZ], flags: 0, _pad: [0; 22] };
        req.name[..name.len()].copy_from_slice(name.as_bytes());
        req.flags = (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes an ifreq, which `req` is laid out as.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req) };
        if rc < 0 {
            let source = std::io::Error::last_os_error();
            return Err(TapError::Attach { name: name.into(), source });
        }
        let tap = Tap { file, name: name.into() };
        let hdr = VNET_HDR_LEN as libc::c_int;
        // SAFETY: TUNSETVNETHDRSZ reads one int.
        let rc = unsafe { libc::ioctl(tap.file.as_raw_fd(), libc::TUNSETVNETHDRSZ, &hdr) };
        if rc < 0 {
            return Err(tap.configure_error());
        }
        Ok(tap)
    }

    /// Frames over one end of a datagram socket pair instead of a tap, with the same
    /// virtio-net header on each (for tests, benchmarks and fuzzing, or a user-space network
    /// on the other end). Offloads are refused. Returns the device's end and the peer.
    pub fn socket_pair() -> std::io::Result<(Tap, std::os::fd::OwnedFd)> {
        use std::os::fd::FromRawFd;
        let mut fds = [0; 2];
        let kind = libc::SOCK_SEQPACKET | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        // SAFETY: socketpair fills two descriptors on success.
        if unsafe { libc::socketpair(libc::AF_UNIX, kind, 0, fds.as_mut_ptr()) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: both descriptors were just created and are owned by nobody else.
        let (ours, peer) =
            unsafe { (File::from_raw_fd(fds[0]), std::os::fd::OwnedFd::from_raw_fd(fds[1])) };
        Ok((Tap { file: ours, name: "socketpair".into() }, peer))
    }

    fn configure_error(&self) -> TapError {
        TapError::Configure { name: self.name.clone(), source: std::io::Error::last_os_error() }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Tells the kernel which offloads the guest takes (TUN_F_* flags).
    pub fn set_offload(&self, flags: libc::c_uint) -> Result<(), TapError> {
        // SAFETY: TUNSETOFFLOAD takes its argument by value.
        let rc = unsafe {
            libc::ioctl(self.file.as_raw_fd(), libc::TUNSETOFFLOAD, flags as libc::c_ulong)
        };
        if rc < 0 { Err(self.configure_error()) } else { Ok(()) }
    }

    /// Reads one frame into `iov`; `Ok(None)` when there is none.
    pub fn read_frame(&self, iov: &[libc::iovec]) -> std::io::Result<Option<usize>> {
        loop {
            // SAFETY: the iovecs point into mapped guest memory for their lengths.
            let n = unsafe {
                libc::readv(self.file.as_raw_fd(), iov.as_ptr(), iov.len() as libc::c_int)
            };
            if n >= 0 {
                return Ok(Some(n as usize));
            }
            let e = std::io::Error::last_os_error();
            match e.kind() {
                std::io::ErrorKind::Interrupted => continue,
                std::io::ErrorKind::WouldBlock => return Ok(None),
                _ => return Err(e),
            }
        }
    }

    /// Writes one frame gathered from `iov`.
    pub fn write_frame(&self, iov: &[libc::iovec]) -> std::io::Result<usize> {
        loop {
            // SAFETY: the iovecs point into mapped guest memory for their lengths.
            let n = unsafe {
                libc::writev(self.file.as_raw_fd(), iov.as_ptr(), iov.len() as libc::c_int)
            };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

impl AsRawFd for Tap {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}
