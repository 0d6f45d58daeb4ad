//! Shared memory segments. A segment's pages are a [`MemObject`] drawn from the sandbox's
//! guest frames (so they count against the sandbox's memory, within shmall); attaching maps
//! an [`Attachment`] of it. The areas of every address space that map a segment share that
//! one attachment object, so the number of areas holding it is the attach count, kept right
//! through fork (areas copied), exec and exit (address spaces dropped) and munmap.

use crate::sync::{Mutex, MutexGuard};
use std::any::Any;
use std::sync::{Arc, Weak};

use crate::abi::Errno;
use crate::creds::Credentials;
use crate::creds::caps::Capability;
use crate::kernel::ipc::IpcNamespace;
use crate::kernel::ipc::limits::IpcLimits;
use crate::kernel::ipc::perm::*;
use crate::mm::address_space::MemoryManager;
use crate::mm::mappable::{Mappable, MemObject};
use crate::mm::{PAGE_SIZE, PhysAddr, Physical};

pub const SHM_RDONLY: i32 = 0o10000;
pub const SHM_RND: i32 = 0o20000;
pub const SHM_REMAP: i32 = 0o40000;
pub const SHM_EXEC: i32 = 0o100000;

pub const SHM_LOCK: i32 = 11;
pub const SHM_UNLOCK: i32 = 12;
pub const SHM_STAT: i32 = 13;
pub const SHM_INFO: i32 = 14;
pub const SHM_STAT_ANY: i32 = 15;

/// Mode flags: removed once nothing is attached, locked in memory.
pub const SHM_DEST: u32 = 0o1000;
pub const SHM_LOCKED: u32 = 0o2000;

pub struct Segment {
    perm: IpcPerm,
    /// The size asked for; the memory is rounded up to pages.
    size: u64,
    mem: Arc<MemObject>,
    attachment: Weak<Attachment>,
    atime: i64,
    dtime: i64,
    ctime: i64,
    cpid: i32,
    lpid: i32,
}

impl IpcObject for Segment {
    fn perm(&self) -> &IpcPerm {
        &self.perm
    }
    fn perm_mut(&mut self) -> &mut IpcPerm {
        &mut self.perm
    }
}

impl Segment {
    fn pages(&self) -> u64 {
        self.size.div_ceil(PAGE_SIZE)
    }

    pub fn nattch(&self) -> u64 {
        self.attachment.strong_count() as u64
    }

    /// struct shmid64_ds.
    fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(112);
        b.extend_from_slice(&self.perm.to_bytes());
        for v in [self.size, self.atime as u64, self.dtime as u64, self.ctime as u64] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&self.cpid.to_le_bytes());
        b.extend_from_slice(&self.lpid.to_le_bytes());
        for v in [self.nattch(), 0, 0] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b
    }
}

/// The memory of one segment as mapped by shmat; one per segment, shared by every area
/// mapping it.
pub struct Attachment {
    ns: Weak<IpcNamespace>,
    pub id: i32,
    key: i32,
    mem: Arc<MemObject>,
}

impl Attachment {
    /// The name /proc/self/maps shows.
    pub fn map_name(&self) -> String {
        format!("/SYSV{:08x} (deleted)", self.key)
    }

    /// Bytes mapped by one attach.
    pub fn len(&self) -> u64 {
        self.mem.size()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Mappable for Attachment {
    fn page(&self, index: u64) -> Result<PhysAddr, Errno> {
        self.mem.page(index)
    }
    fn map_ids(&self) -> (u64, u64) {
        (crate::abi::stat::makedev(0, 1), self.id as u64)
    }
    fn as_any(&self) -> Option<&dyn Any> {
        Some(self)
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        if let Some(ns) = self.ns.upgrade() {
            let forced = ns.limits().shm_rmid_forced != 0;
            ns.shm.last_detached(self.id, forced);
        }
    }
}

#[derive(Default)]
struct ShmTable {
    ids: IdTable<Segment>,
    /// Pages of all segments (within shmall).
    pages: u64,
}

impl ShmTable {
    fn destroy(&mut self, id: i32) {
        if let Some(s) = self.ids.remove(id) {
            self.pages -= s.pages();
        }
    }
}

#[derive(Default)]
pub struct ShmRegistry {
    table: Mutex<ShmTable>,
}

impl ShmRegistry {
    #[track_caller]
    fn lock(&self) -> MutexGuard<'_, ShmTable> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(
        &self,
        phys: &Arc<Physical>,
        limits: &IpcLimits,
        caller: Caller<'_>,
        key: i32,
        size: u64,
        flags: i32,
    ) -> Result<i32, Errno> {
        let Caller { creds, pid } = caller;
        let mut t = self.lock();
        let pages_before = t.pages;
        let mut added = 0;
        let id = t.ids.get_or_create(
            key,
            flags,
            creds,
            |s| if s.size < size { Err(Errno::EINVAL) } else { Ok(()) },
            |ids| {
                if size < 1 || size > limits.shmmax {
                    return Err(Errno::EINVAL);
                }
                let pages = size.div_ceil(PAGE_SIZE);
                match pages_before.checked_add(pages) {
                    Some(total) if total <= limits.shmall => {}
                    _ => return Err(Errno::ENOSPC),
                }
                let mem = Arc::new(MemObject::new(phys.clone(), pages * PAGE_SIZE));
                let now = now();
                let id = ids.add(limits.shmmni, key, flags, creds, |perm| Segment {
                    perm,
                    size,
                    mem,
                    attachment: Weak::new(),
                    atime: 0,
                    dtime: 0,
                    ctime: now,
                    cpid: pid,
                    lpid: 0,
                })?;
                added = pages;
                Ok(id)
            },
        )?;
        t.pages += added;
        Ok(id)
    }

    /// shmat's bookkeeping: checks access and returns the segment's attachment (the caller
    /// maps it; the attach count rises with each area holding it).
    pub fn attach(
        &self,
        ns: &Arc<IpcNamespace>,
        creds: &Credentials,
        id: i32,
        flags: i32,
        pid: i32,
    ) -> Result<Arc<Attachment>, Errno> {
        let mut t = self.lock();
        let s = t.ids.get_mut(id)?;
        let mut want = if flags & SHM_RDONLY != 0 { READ } else { READ | WRITE };
        if flags & SHM_EXEC != 0 {
            want |= EXEC;
        }
        s.perm.check(creds, want)?;
        let att = match s.attachment.upgrade() {
            Some(a) => a,
            None => {
                let a = Arc::new(Attachment {
                    ns: Arc::downgrade(ns),
                    id,
                    key: s.perm.key,
                    mem: s.mem.clone(),
                });
                s.attachment = Arc::downgrade(&a);
                a
            }
        };
        s.atime = now();
        s.lpid = pid;
        Ok(att)
    }

    /// shmdt's bookkeeping (the areas are already gone).
    pub fn detached(&self, id: i32, pid: i32) {
        if let Ok(s) = self.lock().ids.get_mut(id) {
            s.dtime = now();
            s.lpid = pid;
        }
    }

    /// The last area holding segment `id` went away: a removed segment is destroyed now.
    fn last_detached(&self, id: i32, forced: bool) {
        let mut t = self.lock();
        let Ok(s) = t.ids.get(id) else { return };
        if s.nattch() == 0 && (s.perm.mode & SHM_DEST != 0 || forced) {
            t.destroy(id);
        }
    }

    pub fn ctl(
        &self,
        limits: &IpcLimits,
        creds: &Credentials,
        id: i32,
        cmd: i32,
        arg: Option<&[u8]>,
    ) -> Result<CtlOut, Errno> {
        let mut t = self.lock();
        let out = |value, data| Ok(CtlOut { value, data });
        match cmd {
            IPC_INFO => {
                let mut b = Vec::with_capacity(72);
                let shmmni = limits.shmmni.max(0) as u64;
                for v in [limits.shmmax, 1, shmmni, shmmni, limits.shmall, 0, 0, 0, 0] {
                    b.extend_from_slice(&v.to_le_bytes());
                }
                out(t.ids.max_index(), Some(b))
            }
            SHM_INFO => {
                let mut b = Vec::with_capacity(48);
                b.extend_from_slice(&(t.ids.len() as i32).to_le_bytes());
                b.extend_from_slice(&[0; 4]);
                let rss: u64 = t.ids.iter().map(|s| s.mem.resident()).sum();
                for v in [t.pages, rss, 0, 0, 0] {
                    b.extend_from_slice(&v.to_le_bytes());
                }
                out(t.ids.max_index(), Some(b))
            }
            IPC_STAT | SHM_STAT | SHM_STAT_ANY => {
                let by = match cmd {
                    IPC_STAT => StatBy::Id,
                    SHM_STAT => StatBy::Index,
                    _ => StatBy::IndexAny,
                };
                let (s, value) = t.ids.stat(creds, id, by)?;
                out(value, Some(s.to_bytes()))
            }
            IPC_SET => {
                let arg = arg.ok_or(Errno::EFAULT)?;
                let s = t.ids.get_mut(id)?;
                s.perm.check_owner(creds)?;
                s.perm.set(&PermArg::parse(arg));
                s.ctime = now();
                out(0, None)
            }
            IPC_RMID => {
                let s = t.ids.get_mut(id)?;
                s.perm.check_owner(creds)?;
                if s.nattch() > 0 {
                    s.perm.mode |= SHM_DEST;
                    s.perm.key = IPC_PRIVATE;
                } else {
                    t.destroy(id);
                }
                out(0, None)
            }
            SHM_LOCK | SHM_UNLOCK => {
                let s = t.ids.get_mut(id)?;
                if !creds.has_cap(Capability::IPC_LOCK)
                    && creds.euid != s.perm.uid
                    && creds.euid != s.perm.cuid
                {
                    return Err(Errno::EPERM);
                }
                // Guest frames are never swapped: locking only shows in the mode.
                if cmd == SHM_LOCK {
                    s.perm.mode |= SHM_LOCKED;
                } else {
                    s.perm.mode &= !SHM_LOCKED;
                }
                out(0, None)
            }
            _ => Err(Errno::EINVAL),
        }
    }

    /// Destroys the segments nothing is attached to whose creator `orphaned` says is gone
    /// (with shm_rmid_forced: at the creator's exit, and when the sysctl is turned on).
    pub fn destroy_orphans(&self, orphaned: impl Fn(i32) -> bool) {
        let mut t = self.lock();
        let ids: Vec<i32> = t
            .ids
            .iter()
            .filter(|s| s.nattch() == 0 && orphaned(s.cpid))
            .map(|s| s.perm.id)
            .collect();
        for id in ids {
            t.destroy(id);
        }
    }

    /// /proc/sysvipc/shm.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let t = self.lock();
        let mut s = String::from(
            "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap\n",
        );
        for g in t.ids.iter() {
            let p = &g.perm;
            let _ = writeln!(
                s,
                "{:>10} {:>10}  {:>4o} {:>21} {:>5} {:>5}  {:>5} {:>5} {:>5} {:>5} {:>5} {:>10} {:>10} {:>10} {:>21} {:>21}",
                p.key,
                p.id,
                p.mode,
                g.size,
                g.cpid,
                g.lpid,
                g.nattch(),
                p.uid,
                p.gid,
                p.cuid,
                p.cgid,
                g.atime,
                g.dtime,
                g.ctime,
                g.mem.resident() * PAGE_SIZE,
                0
            );
        }
        s
    }
}

/// The segment an area maps, if it maps one.
pub fn attachment_of(v: &crate::mm::vma::Vma) -> Option<(i32, u64)> {
    let b = v.backing.as_ref()?;
    let a = b.as_any()?.downcast_ref::<Attachment>()?;
    Some((a.id, a.len()))
}

/// Detaches every segment from an exiting process's address space, unless another process
/// still shares it (vfork): attach counts drop as the process exits, not when its memory is
/// finally freed.
pub fn detach_all(task: &crate::kernel::task::Task) {
    detach_from(&task.mm(), task);
}

/// Detaches the segments of `mm`, the address space `task`'s process had before exec replaced
/// it (unless another process still shares it, a vfork parent), with the detach time and
/// process, as each detach does.
pub fn exec_detached(mm: &Arc<MemoryManager>, task: &crate::kernel::task::Task) {
    detach_from(mm, task);
}

fn detach_from(mm: &Arc<MemoryManager>, task: &crate::kernel::task::Task) {
    // Asked of the live tasks rather than of the references to it, which others take for a
    // moment (a vCPU, /proc, a parent returning from fork): one of those at the wrong time left
    // the attachments to the memory's eventual release, without their detach time.
    let shared = task
        .kernel
        .tasks()
        .threads
        .values()
        .any(|t| !std::ptr::eq(Arc::as_ptr(t), task) && Arc::ptr_eq(&t.mm(), mm));
    if shared {
        return;
    }
    let areas: Vec<(u64, u64, i32)> = mm
        .areas()
        .iter()
        .filter_map(|v| attachment_of(v).map(|(id, _)| (v.start, v.end, id)))
        .collect();
    for (start, end, _) in &areas {
        let _ = mm.munmap(*start, end - start);
    }
    record_detaches(&areas, task);
}

fn record_detaches(areas: &[(u64, u64, i32)], task: &crate::kernel::task::Task) {
    let mut ids: Vec<i32> = areas.iter().map(|(_, _, id)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        task.kernel.ipc.shm.detached(id, task.tgid());
    }
}
