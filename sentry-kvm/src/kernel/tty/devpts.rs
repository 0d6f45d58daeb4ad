//! The devpts filesystem: /dev/pts/ptmx (also /dev/ptmx) opens a new pty's master; /dev/pts/N
//! its slave, once unlocked. Also /dev/tty, the caller's controlling terminal. One instance per
//! sandbox, which host code can also ask for a pty pair ([`Devpts::open_pair`]).

use crate::sync::{Mutex, MutexGuard};
use std::any::Any;
use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use super::pty::{Pty, PtyMaster, PtySlave, devpts_dev};
use crate::abi::Errno;
use crate::abi::stat::{FileType, O_NOCTTY, S_IFCHR, Stat, Timespec, makedev};
use crate::kernel::Kernel;
use crate::kernel::task::current;
use crate::vfs::file::FileOps;
use crate::vfs::fs::synthetic::{Children, SynthDir, alloc_ino};
use crate::vfs::inode::{Inode, InodeKey};

/// Most ptys a sandbox may have open at once (Linux's default kernel.pty.max is 4096).
const MAX_PTYS: u32 = 4096;

pub struct Devpts {
    kernel: Weak<Kernel>,
    ptys: Mutex<BTreeMap<u32, Weak<Pty>>>,
    me: Weak<Devpts>,
}

impl Devpts {
    pub fn new(kernel: Weak<Kernel>) -> Arc<Devpts> {
        Arc::new_cyclic(|me| Devpts { kernel, ptys: Mutex::new(BTreeMap::new()), me: me.clone() })
    }

    #[track_caller]
    fn lock(&self) -> MutexGuard<'_, BTreeMap<u32, Weak<Pty>>> {
        self.ptys.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new pty (locked, as posix_openpt leaves it) and its master side.
    pub fn open_master(&self, owner: (u32, u32)) -> Result<Arc<PtyMaster>, Errno> {
        let mut ptys = self.lock();
        let index = (0..MAX_PTYS).find(|i| ptys.get(i).is_none_or(|w| w.strong_count() == 0));
        let index = index.ok_or(Errno::ENOSPC)?;
        let me = self.me.clone();
        let forget = Box::new(move || {
            if let Some(d) = me.upgrade() {
                let mut ptys = d.lock();
                if ptys.get(&index).is_some_and(|w| w.strong_count() == 0) {
                    ptys.remove(&index);
                }
            }
        });
        let pty = Pty::new(index, self.kernel.clone(), owner, forget);
        ptys.insert(index, Arc::downgrade(&pty));
        Ok(PtyMaster::new(pty))
    }

    /// A pty pair for host code (a process's stdio on a terminal): unlocked, no session yet.
    pub fn open_pair(&self) -> Result<(Arc<PtyMaster>, Arc<PtySlave>), Errno> {
        let master = self.open_master((0, 5))?;
        let slave = {
            let pty = master.pty();
            pty.unlock();
            pty.open_slave(O_NOCTTY)?
        };
        Ok((master, slave))
    }

    fn get(&self, index: u32) -> Option<Arc<Pty>> {
        self.lock().get(&index).and_then(Weak::upgrade)
    }

    fn live(&self) -> Vec<Arc<Pty>> {
        self.lock().values().filter_map(Weak::upgrade).collect()
    }

    /// The controlling terminal of session `sid`.
    pub fn controlling(&self, sid: i32) -> Option<Arc<Pty>> {
        // Collected first: a pty's lock is never taken under the table's.
        self.live().into_iter().find(|p| p.session() == Some(sid))
    }

    /// The /dev/pts directory.
    pub fn root(self: &Arc<Self>) -> Arc<SynthDir> {
        SynthDir::new(devpts_dev(), 0o755, Box::new(PtsDir { devpts: Arc::downgrade(self) }))
    }

    /// The /dev/tty node.
    pub fn tty_node(self: &Arc<Self>) -> Arc<dyn Inode> {
        Arc::new(Node { kind: NodeKind::Tty(Arc::downgrade(self)), ino: alloc_ino() })
    }
}

struct PtsDir {
    devpts: Weak<Devpts>,
}

impl Children for PtsDir {
    fn list(&self) -> Vec<(Vec<u8>, Arc<dyn Inode>)> {
        let mut out: Vec<(Vec<u8>, Arc<dyn Inode>)> = vec![(b"ptmx".to_vec(), self.ptmx())];
        if let Some(d) = self.devpts.upgrade() {
            for p in d.live() {
                out.push((p.index().to_string().into_bytes(), slave_node(&p)));
            }
        }
        out
    }

    fn lookup(&self, name: &[u8]) -> Option<Arc<dyn Inode>> {
        if name == b"ptmx" {
            return Some(self.ptmx());
        }
        let index: u32 = std::str::from_utf8(name).ok()?.parse().ok()?;
        // "01" is not pty 1.
        if index.to_string().as_bytes() != name {
            return None;
        }
        Some(slave_node(&self.devpts.upgrade()?.get(index)?))
    }
}

impl PtsDir {
    fn ptmx(&self) -> Arc<dyn Inode> {
        Arc::new(Node { kind: NodeKind::Ptmx(self.devpts.clone()), ino: 2 })
    }
}

fn slave_node(pty: &Arc<Pty>) -> Arc<dyn Inode> {
    Arc::new(Node { kind: NodeKind::Slave(Arc::downgrade(pty)), ino: u64::from(pty.index()) + 3 })
}

enum NodeKind {
    /// Opening it makes a new pty.
    Ptmx(Weak<Devpts>),
    Slave(Weak<Pty>),
    /// The opener's controlling terminal.
    Tty(Weak<Devpts>),
}

/// A device node of devpts (or /dev/tty).
struct Node {
    kind: NodeKind,
    ino: u64,
}

fn char_stat(dev: u64, ino: u64, rdev: u64, mode: u32) -> Stat {
    let now = Timespec::now();
    Stat {
        dev,
        ino,
        nlink: 1,
        mode: S_IFCHR | mode,
        rdev,
        blksize: 1024,
        atime: now,
        mtime: now,
        ctime: now,
        ..Default::default()
    }
}

impl Inode for Node {
    fn key(&self) -> InodeKey {
        match self.kind {
            NodeKind::Tty(_) => (makedev(0, 5), self.ino),
            _ => (devpts_dev(), self.ino),
        }
    }

    fn stat(&self) -> Result<Stat, Errno> {
        Ok(match &self.kind {
            NodeKind::Ptmx(_) => char_stat(devpts_dev(), 2, makedev(5, 2), 0o666),
            NodeKind::Slave(p) => p.upgrade().ok_or(Errno::ENOENT)?.slave_stat(),
            NodeKind::Tty(_) => char_stat(makedev(0, 5), self.ino, makedev(5, 0), 0o666),
        })
    }

    fn file_type(&self) -> FileType {
        FileType::CharDevice
    }

    fn open(self: Arc<Self>, flags: u32) -> Result<Arc<dyn FileOps>, Errno> {
        match &self.kind {
            NodeKind::Ptmx(d) => {
                let owner = current().map(|t| (t.creds().euid, 5)).unwrap_or((0, 5));
                Ok(d.upgrade().ok_or(Errno::ENODEV)?.open_master(owner)?)
            }
            NodeKind::Slave(p) => Ok(p.upgrade().ok_or(Errno::EIO)?.open_slave(flags)?),
            NodeKind::Tty(d) => {
                let task = current().ok_or(Errno::ENXIO)?;
                let sid = task.kernel.tasks().proc(task.tgid()).map(|p| p.sid);
                let devpts = d.upgrade().ok_or(Errno::ENXIO)?;
                let pty = sid.and_then(|s| devpts.controlling(s)).ok_or(Errno::ENXIO)?;
                Ok(pty.open_slave(flags | O_NOCTTY)?)
            }
        }
    }

    // Opening a terminal changes nothing on disk; chmod/chown by grantpt are accepted.
    fn setattr(&self, _a: crate::vfs::inode::SetAttr) -> Result<(), Errno> {
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
