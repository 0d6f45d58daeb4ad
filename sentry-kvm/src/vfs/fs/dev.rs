//! /dev: the character devices a sandbox gets (null, zero, full, random, urandom), the links
//! to its stdio and to /dev/pts/ptmx, and the directory that holds them.

use std::any::Any;
use std::sync::Arc;

use super::synthetic::{Fixed, SynthDir, SynthLink, alloc_ino};
use crate::abi::Errno;
use crate::abi::stat::{FileType, S_IFCHR, Stat, Timespec, makedev};
use crate::vfs::context::Context;
use crate::vfs::file::FileOps;
use crate::vfs::inode::{Inode, InodeKey};
use crate::waiter::Events;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    Null,
    Zero,
    Full,
    Random,
    Urandom,
}

impl Device {
    fn from_rdev(rdev: u64) -> Option<Device> {
        Some(match (crate::abi::stat::major(rdev), crate::abi::stat::minor(rdev)) {
            (1, 3) => Device::Null,
            (1, 5) => Device::Zero,
            (1, 7) => Device::Full,
            (1, 8) => Device::Random,
            (1, 9) => Device::Urandom,
            _ => return None,
        })
    }

    fn rdev(self) -> u64 {
        makedev(
            1,
            match self {
                Device::Null => 3,
                Device::Zero => 5,
                Device::Full => 7,
                Device::Random => 8,
                Device::Urandom => 9,
            },
        )
    }
}

/// Opens the device with number `rdev` (device nodes in the rootfs map to these too).
pub fn open_device(rdev: u64, _flags: u32) -> Result<Arc<dyn FileOps>, Errno> {
    let d = Device::from_rdev(rdev).ok_or(Errno::ENXIO)?;
    Ok(Arc::new(DevFile { dev: d, ino: alloc_ino() }))
}

struct DevFile {
    dev: Device,
    ino: u64,
}

impl FileOps for DevFile {
    fn seekable(&self) -> bool {
        true
    }
    fn read_at(&self, _ctx: &dyn Context, buf: &mut [u8], _off: u64) -> Result<usize, Errno> {
        match self.dev {
            Device::Null => Ok(0),
            Device::Zero | Device::Full => {
                buf.fill(0);
                Ok(buf.len())
            }
            Device::Random | Device::Urandom => {
                let n = buf.len().min(1 << 20);
                crate::random::fill(&mut buf[..n]);
                Ok(n)
            }
        }
    }
    fn write_at(&self, _ctx: &dyn Context, data: &[u8], _off: u64) -> Result<usize, Errno> {
        match self.dev {
            Device::Full => Err(Errno::ENOSPC),
            _ => Ok(data.len()),
        }
    }
    fn seek(&self, _o: i64, _w: u32, _c: u64) -> Option<Result<u64, Errno>> {
        Some(Ok(0))
    }
    fn readiness(&self) -> Events {
        Events::IN | Events::OUT
    }
    fn stat(&self) -> Result<Stat, Errno> {
        Ok(device_stat(self.dev, self.ino))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn device_stat(d: Device, ino: u64) -> Stat {
    let now = Timespec::now();
    Stat {
        dev: makedev(0, 5),
        ino,
        nlink: 1,
        mode: S_IFCHR | 0o666,
        rdev: d.rdev(),
        blksize: 4096,
        atime: now,
        mtime: now,
        ctime: now,
        ..Default::default()
    }
}

/// A device node in /dev.
struct DevNode {
    dev: Device,
    ino: u64,
}

impl Inode for DevNode {
    fn key(&self) -> InodeKey {
        (makedev(0, 5), self.ino)
    }
    fn stat(&self) -> Result<Stat, Errno> {
        Ok(device_stat(self.dev, self.ino))
    }
    fn file_type(&self) -> FileType {
        FileType::CharDevice
    }
    fn open(self: Arc<Self>, flags: u32) -> Result<Arc<dyn FileOps>, Errno> {
        open_device(self.dev.rdev(), flags)
    }
    fn setattr(&self, _a: crate::vfs::inode::SetAttr) -> Result<(), Errno> {
        Ok(())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The /dev directory with `extra` nodes (the kernel's, such as tty); `shm` and `pts` are the
/// (empty) directories on which a tmpfs and devpts get mounted.
pub fn build(
    extra: Vec<(Vec<u8>, Arc<dyn Inode>)>,
) -> (Arc<SynthDir>, Arc<SynthDir>, Arc<SynthDir>) {
    let dev = makedev(0, 5);
    let node = |d: Device| -> Arc<dyn Inode> { Arc::new(DevNode { dev: d, ino: alloc_ino() }) };
    let shm = SynthDir::new(dev, 0o1777, Box::new(Fixed(Vec::new())));
    let pts = SynthDir::new(dev, 0o755, Box::new(Fixed(Vec::new())));
    let mut children: Vec<(Vec<u8>, Arc<dyn Inode>)> = vec![
        (b"null".to_vec(), node(Device::Null)),
        (b"zero".to_vec(), node(Device::Zero)),
        (b"full".to_vec(), node(Device::Full)),
        (b"random".to_vec(), node(Device::Random)),
        (b"urandom".to_vec(), node(Device::Urandom)),
        (b"fd".to_vec(), SynthLink::fixed(dev, b"/proc/self/fd")),
        (b"stdin".to_vec(), SynthLink::fixed(dev, b"/proc/self/fd/0")),
        (b"stdout".to_vec(), SynthLink::fixed(dev, b"/proc/self/fd/1")),
        (b"stderr".to_vec(), SynthLink::fixed(dev, b"/proc/self/fd/2")),
        (b"shm".to_vec(), shm.clone()),
        (b"pts".to_vec(), pts.clone()),
        // As container runtimes set it up: the multiplexor of the devpts mounted on pts.
        (b"ptmx".to_vec(), SynthLink::fixed(dev, b"pts/ptmx")),
    ];
    children.extend(extra);
    let root = SynthDir::new(dev, 0o755, Box::new(Fixed(children)));
    let as_inode: Arc<dyn Inode> = root.clone();
    shm.set_parent(&as_inode, b"shm");
    pts.set_parent(&as_inode, b"pts");
    (root, shm, pts)
}
