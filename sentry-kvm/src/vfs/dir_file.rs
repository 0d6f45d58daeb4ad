//! An open directory: getdents64 over the inode's listing, with `.` and `..`.

use crate::sync::Mutex;
use std::any::Any;
use std::sync::Arc;

use crate::abi::Errno;
use crate::abi::stat::{Stat, push_dirent64};
use crate::vfs::file::{FileOps, SEEK_CUR, SEEK_SET};
use crate::vfs::inode::{DirEntry, Inode};

pub struct DirFile {
    inode: Arc<dyn Inode>,
    /// Listing taken at the first getdents after open or rewind, so a cursor stays stable
    /// while entries are added or removed.
    snapshot: Mutex<Option<Vec<DirEntry>>>,
}

impl DirFile {
    pub fn new(inode: Arc<dyn Inode>) -> Arc<DirFile> {
        Arc::new(DirFile { inode, snapshot: Mutex::new(None) })
    }
}

impl FileOps for DirFile {
    fn stat(&self) -> Result<Stat, Errno> {
        self.inode.stat()
    }

    fn seek(&self, offset: i64, whence: u32, current: u64) -> Option<Result<u64, Errno>> {
        let new = match whence {
            SEEK_SET => offset,
            SEEK_CUR => current as i64 + offset,
            _ => return Some(Err(Errno::EINVAL)),
        };
        if new < 0 {
            return Some(Err(Errno::EINVAL));
        }
        if new == 0 {
            *self.snapshot.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        Some(Ok(new as u64))
    }

    fn getdents(&self, cursor: &mut u64, cap: usize) -> Result<Vec<u8>, Errno> {
        let mut snap = self.snapshot.lock().unwrap_or_else(|e| e.into_inner());
        if snap.is_none() || *cursor == 0 {
            let mut all = vec![
                DirEntry {
                    name: b".".to_vec(),
                    ino: self.inode.key().1,
                    kind: crate::abi::stat::FileType::Directory,
                },
                DirEntry {
                    name: b"..".to_vec(),
                    ino: self.inode.parent().map(|(p, _)| p.key().1).unwrap_or(self.inode.key().1),
                    kind: crate::abi::stat::FileType::Directory,
                },
            ];
            all.extend(self.inode.readdir()?);
            *snap = Some(all);
        }
        let entries = snap.as_ref().map(|v| v.as_slice()).unwrap_or(&[]);
        let mut out = Vec::new();
        while (*cursor as usize) < entries.len() {
            let e = &entries[*cursor as usize];
            if !push_dirent64(
                &mut out,
                cap,
                e.ino,
                (*cursor + 1) as i64,
                e.kind.dirent_type(),
                &e.name,
            ) {
                if out.is_empty() {
                    return Err(Errno::EINVAL);
                }
                break;
            }
            *cursor += 1;
        }
        Ok(out)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
