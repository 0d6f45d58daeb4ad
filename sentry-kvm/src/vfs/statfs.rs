//! What statfs(2) reports for a mount. Everything the Sentry writes lands in sandbox memory
//! (the overlay's upper layer, tmpfs), so those filesystems report the sandbox's memory as
//! their space, as Linux's tmpfs does with its size limit; pseudo filesystems (proc, devpts)
//! report no space at all, as on Linux; volumes report their host filesystem's, asked of their
//! Gofer. Magic numbers are Linux's for the same filesystems.

use crate::vfs::mount::Mount;

const TMPFS_MAGIC: u64 = 0x0102_1994;
const OVERLAYFS_SUPER_MAGIC: u64 = 0x794c_7630;
const PROC_SUPER_MAGIC: u64 = 0x9fa0;
const DEVPTS_SUPER_MAGIC: u64 = 0x1cd1;
/// f_flags: the flags are valid (Linux always sets it; glibc's statvfs relies on it).
const ST_VALID: u64 = 0x20;
const ST_RDONLY: u64 = 1;
const BLOCK: u64 = 4096;
const NAME_MAX: u64 = 255;

/// struct statfs, x86-64 layout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatFs {
    pub kind: u64,
    pub bsize: u64,
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub fsid: u64,
    pub namelen: u64,
    pub frsize: u64,
    pub flags: u64,
}

impl StatFs {
    /// The statistics of `mount` in a sandbox of `mem_bytes` bytes of which `used_bytes` hold
    /// data now.
    pub fn of_mount(mount: &Mount, mem_bytes: u64, used_bytes: u64) -> StatFs {
        let flags = ST_VALID | if mount.read_only { ST_RDONLY } else { 0 };
        let base = StatFs {
            bsize: BLOCK,
            frsize: BLOCK,
            namelen: NAME_MAX,
            fsid: mount.id,
            flags,
            ..Default::default()
        };
        let memory = |kind: u64| {
            let blocks = mem_bytes / BLOCK;
            let bfree = blocks.saturating_sub(used_bytes / BLOCK);
            // tmpfs's default inode limit: half the pages.
            StatFs {
                kind,
                blocks,
                bfree,
                bavail: bfree,
                files: blocks / 2,
                ffree: bfree / 2,
                ..base
            }
        };
        match mount.fstype.as_str() {
            "proc" => StatFs { kind: PROC_SUPER_MAGIC, ..base },
            "devpts" => StatFs { kind: DEVPTS_SUPER_MAGIC, ..base },
            "overlay" => memory(OVERLAYFS_SUPER_MAGIC),
            _ => memory(TMPFS_MAGIC),
        }
    }

    /// The fields in struct statfs order.
    pub fn fields(self) -> [u64; 11] {
        [
            self.kind,
            self.bsize,
            self.blocks,
            self.bfree,
            self.bavail,
            self.files,
            self.ffree,
            self.fsid,
            self.namelen,
            self.frsize,
            self.flags,
        ]
    }

    pub fn from_fields(f: [u64; 11]) -> StatFs {
        let [kind, bsize, blocks, bfree, bavail, files, ffree, fsid, namelen, frsize, flags] = f;
        StatFs { kind, bsize, blocks, bfree, bavail, files, ffree, fsid, namelen, frsize, flags }
    }

    /// A host filesystem's statistics (a volume's), as the sandbox sees them through `mount`.
    pub fn of_host(host: StatFs, mount: &Mount) -> StatFs {
        let flags = ST_VALID | if mount.read_only { ST_RDONLY } else { 0 };
        StatFs { fsid: mount.id, flags, ..host }
    }

    pub fn to_bytes(self) -> [u8; 120] {
        let mut b = [0u8; 120];
        for (i, v) in self.fields().iter().enumerate() {
            b[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        b
    }
}
