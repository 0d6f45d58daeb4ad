//! What every System V IPC object has: a key, an owner and mode checked against the caller's
//! credentials, and an id that names one object only (index plus sequence number, so an id
//! kept after its object was removed never reaches a newer object in the same slot).

use std::collections::BTreeMap;

use crate::abi::Errno;
use crate::creds::Credentials;
use crate::creds::caps::Capability;
use crate::kernel::ipc::limits::IPCMNI;

pub const IPC_PRIVATE: i32 = 0;
pub const IPC_CREAT: i32 = 0o1000;
pub const IPC_EXCL: i32 = 0o2000;
pub const IPC_NOWAIT: i32 = 0o4000;

pub const IPC_RMID: i32 = 0;
pub const IPC_SET: i32 = 1;
pub const IPC_STAT: i32 = 2;
pub const IPC_INFO: i32 = 3;

/// Access a caller asks for, as permission bits for everyone (S_IRUGO, S_IWUGO, S_IXUGO).
pub const READ: u32 = 0o444;
pub const WRITE: u32 = 0o222;
pub const EXEC: u32 = 0o111;

pub const CAP_IPC_OWNER: Capability = Capability::IPC_OWNER;

/// Who makes a call: the credentials checked and the process id recorded.
#[derive(Clone, Copy)]
pub struct Caller<'a> {
    pub creds: &'a Credentials,
    pub pid: i32,
}

/// Owner, creator, mode and identity of one object (struct ipc64_perm).
#[derive(Clone, Debug)]
pub struct IpcPerm {
    pub key: i32,
    pub uid: u32,
    pub gid: u32,
    pub cuid: u32,
    pub cgid: u32,
    /// Permission bits, plus the kind's own flags above them (SHM_DEST, SHM_LOCKED).
    pub mode: u32,
    pub seq: u16,
    pub id: i32,
}

impl IpcPerm {
    fn new(key: i32, flags: i32, creds: &Credentials) -> IpcPerm {
        IpcPerm {
            key,
            uid: creds.euid,
            gid: creds.egid,
            cuid: creds.euid,
            cgid: creds.egid,
            mode: flags as u32 & 0o777,
            seq: 0,
            id: -1,
        }
    }

    /// Whether `creds` may have `want` (READ, WRITE, EXEC or a union): the owner's, group's
    /// or others' bits, else CAP_IPC_OWNER.
    pub fn permits(&self, creds: &Credentials, want: u32) -> bool {
        let requested = (want >> 6) | (want >> 3) | want;
        let granted = if creds.euid == self.cuid || creds.euid == self.uid {
            self.mode >> 6
        } else if [self.cgid, self.gid]
            .iter()
            .any(|g| *g == creds.fsgid || creds.groups.contains(g))
        {
            self.mode >> 3
        } else {
            self.mode
        };
        requested & !granted & 0o7 == 0 || creds.has_cap(CAP_IPC_OWNER)
    }

    /// Checks `want` access: EACCES without it.
    pub fn check(&self, creds: &Credentials, want: u32) -> Result<(), Errno> {
        if self.permits(creds, want) { Ok(()) } else { Err(Errno::EACCES) }
    }

    /// IPC_SET and IPC_RMID: the owner, the creator, or CAP_SYS_ADMIN (else EPERM).
    pub fn check_owner(&self, creds: &Credentials) -> Result<(), Errno> {
        if creds.euid == self.cuid || creds.euid == self.uid || creds.has_cap(Capability::SYS_ADMIN)
        {
            Ok(())
        } else {
            Err(Errno::EPERM)
        }
    }

    /// IPC_SET: new owner and permission bits (the kind's flags stay).
    pub fn set(&mut self, new: &PermArg) {
        self.uid = new.uid;
        self.gid = new.gid;
        self.mode = (self.mode & !0o777) | (new.mode & 0o777);
    }

    /// struct ipc64_perm.
    pub fn to_bytes(&self) -> [u8; PERM_SIZE] {
        let mut b = [0u8; PERM_SIZE];
        b[0..4].copy_from_slice(&self.key.to_le_bytes());
        b[4..8].copy_from_slice(&self.uid.to_le_bytes());
        b[8..12].copy_from_slice(&self.gid.to_le_bytes());
        b[12..16].copy_from_slice(&self.cuid.to_le_bytes());
        b[16..20].copy_from_slice(&self.cgid.to_le_bytes());
        b[20..24].copy_from_slice(&self.mode.to_le_bytes());
        b[24..26].copy_from_slice(&self.seq.to_le_bytes());
        b
    }
}

pub const PERM_SIZE: usize = 48;

/// The fields IPC_SET reads from a caller's ipc64_perm.
#[derive(Clone, Copy, Debug)]
pub struct PermArg {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

impl PermArg {
    pub fn parse(b: &[u8]) -> PermArg {
        let word =
            |o: usize| b.get(o..o + 4).map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]));
        PermArg { uid: word(4), gid: word(8), mode: word(20) }
    }
}

/// What a ctl command returns: its value, and bytes for the caller's buffer.
pub struct CtlOut {
    pub value: i32,
    pub data: Option<Vec<u8>>,
}

/// How IPC_STAT and the *_STAT commands name the object they describe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatBy {
    /// IPC_STAT: by id, with read access.
    Id,
    /// SHM_STAT, SEM_STAT, MSG_STAT: by index, with read access; they return the id.
    Index,
    /// The *_STAT_ANY commands: by index, whatever the access.
    IndexAny,
}

/// Kinds of objects kept in an [`IdTable`].
pub trait IpcObject {
    fn perm(&self) -> &IpcPerm;
    fn perm_mut(&mut self) -> &mut IpcPerm;
}

/// The objects of one kind, by index; ids are `index + seq * IPCMNI`. Indices are handed out
/// cyclically within a window a little larger than the objects in use (at least 64), and the
/// sequence number moves on each time the cycle wraps, as Linux does: a removed object's id
/// names nothing for as long as possible.
pub struct IdTable<T> {
    objects: BTreeMap<i32, T>,
    /// Where the next search for a free index starts.
    cursor: i32,
    last_index: i32,
    seq: u16,
}

impl<T> Default for IdTable<T> {
    fn default() -> Self {
        IdTable { objects: BTreeMap::new(), cursor: 0, last_index: -1, seq: 0 }
    }
}

/// The smallest window indices cycle through.
const MIN_CYCLE: usize = 64;
/// Sequence numbers stay below this, so that ids stay positive ints.
const SEQ_LIMIT: u16 = (i32::MAX / IPCMNI) as u16;

impl<T: IpcObject> IdTable<T> {
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// The object `id` names: EINVAL for negative ids, empty slots and stale sequences.
    pub fn get(&self, id: i32) -> Result<&T, Errno> {
        let o = self.objects.get(&index_of(id)?).ok_or(Errno::EINVAL)?;
        if o.perm().id != id {
            return Err(Errno::EINVAL);
        }
        Ok(o)
    }

    pub fn get_mut(&mut self, id: i32) -> Result<&mut T, Errno> {
        let o = self.objects.get_mut(&index_of(id)?).ok_or(Errno::EINVAL)?;
        if o.perm().id != id {
            return Err(Errno::EINVAL);
        }
        Ok(o)
    }

    /// The object in slot `index` (the *_STAT commands name objects by index).
    pub fn by_index(&self, index: i32) -> Result<&T, Errno> {
        self.objects.get(&index).ok_or(Errno::EINVAL)
    }

    /// The object a stat command describes, and the command's value.
    pub fn stat(&self, creds: &Credentials, id: i32, by: StatBy) -> Result<(&T, i32), Errno> {
        let o = if by == StatBy::Id { self.get(id)? } else { self.by_index(id)? };
        if by != StatBy::IndexAny {
            o.perm().check(creds, READ)?;
        }
        Ok((o, if by == StatBy::Id { 0 } else { o.perm().id }))
    }

    pub fn remove(&mut self, id: i32) -> Option<T> {
        self.get(id).ok()?;
        self.objects.remove(&index_of(id).ok()?)
    }

    /// The id of the object with `key` (never IPC_PRIVATE ones).
    pub fn find_key(&self, key: i32) -> Option<i32> {
        if key == IPC_PRIVATE {
            return None;
        }
        self.objects.values().find(|o| o.perm().key == key).map(|o| o.perm().id)
    }

    /// Highest index in use, for the *_INFO commands' return value (0 when empty).
    pub fn max_index(&self) -> i32 {
        self.objects.keys().next_back().copied().unwrap_or(0)
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.objects.values()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.objects.values_mut()
    }

    /// Adds an object made by `make` from its permissions (id already set), in the next free
    /// index of the cycle; ENOSPC once `mni` objects exist.
    pub fn add(
        &mut self,
        mni: i32,
        key: i32,
        flags: i32,
        creds: &Credentials,
        make: impl FnOnce(IpcPerm) -> T,
    ) -> Result<i32, Errno> {
        let mni = mni.clamp(0, IPCMNI);
        if self.objects.len() >= mni as usize {
            return Err(Errno::ENOSPC);
        }
        let window = (self.objects.len() * 3 / 2).max(MIN_CYCLE).min(IPCMNI as usize) as i32;
        let free = |from: i32, to: i32| (from..to).find(|i| !self.objects.contains_key(i));
        let index = free(self.cursor, window).or_else(|| free(0, window)).ok_or(Errno::ENOSPC)?;
        if index <= self.last_index {
            self.seq += 1;
            if self.seq == SEQ_LIMIT {
                self.seq = 0;
            }
        }
        self.last_index = index;
        self.cursor = index + 1;
        let mut perm = IpcPerm::new(key, flags, creds);
        perm.seq = self.seq;
        perm.id = index + i32::from(perm.seq) * IPCMNI;
        let id = perm.id;
        self.objects.insert(index, make(perm));
        Ok(id)
    }

    /// The shmget/semget/msgget lookup: an existing object for `key` (after `check` on it and
    /// the caller's access), or a new one from `create`.
    pub fn get_or_create(
        &mut self,
        key: i32,
        flags: i32,
        creds: &Credentials,
        check: impl FnOnce(&T) -> Result<(), Errno>,
        create: impl FnOnce(&mut Self) -> Result<i32, Errno>,
    ) -> Result<i32, Errno> {
        match self.find_key(key) {
            None if key != IPC_PRIVATE && flags & IPC_CREAT == 0 => Err(Errno::ENOENT),
            None => create(self),
            Some(_) if flags & IPC_CREAT != 0 && flags & IPC_EXCL != 0 => Err(Errno::EEXIST),
            Some(id) => {
                let o = self.get(id)?;
                check(o)?;
                o.perm().check(creds, flags as u32 & 0o777)?;
                Ok(id)
            }
        }
    }
}

fn index_of(id: i32) -> Result<i32, Errno> {
    if id < 0 {
        return Err(Errno::EINVAL);
    }
    Ok(id % IPCMNI)
}

/// Seconds since the epoch, for the objects' time stamps.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::creds::caps::Capabilities;

    struct Obj(IpcPerm);
    impl IpcObject for Obj {
        fn perm(&self) -> &IpcPerm {
            &self.0
        }
        fn perm_mut(&mut self) -> &mut IpcPerm {
            &mut self.0
        }
    }

    #[test]
    fn ids_cycle_through_indices_and_stale_ones_name_nothing() {
        let root = Credentials::root();
        let mut t: IdTable<Obj> = IdTable::default();
        let add = |t: &mut IdTable<Obj>| t.add(IPCMNI, 0, 0o600, &root, Obj).unwrap();
        let (a, b) = (add(&mut t), add(&mut t));
        assert_eq!((a, b), (0, 1));
        t.remove(a).unwrap();
        assert_eq!(add(&mut t), 2, "the cycle goes on past a freed index");
        assert_eq!(t.get(a).err(), Some(Errno::EINVAL));
        // Past the 64-index window the cycle wraps to the lowest free index, with the next
        // sequence number: the old id of that index stays stale.
        for _ in 3..64 {
            let id = add(&mut t);
            t.remove(id).unwrap();
        }
        let wrapped = add(&mut t);
        assert_eq!(wrapped, IPCMNI, "index 0 again, sequence 1");
        assert_eq!(t.get(a).err(), Some(Errno::EINVAL));
        assert!(t.get(wrapped).is_ok() && t.get(-1).is_err());
        assert_eq!(t.max_index(), 2);
        let mut full: IdTable<Obj> = IdTable::default();
        for _ in 0..IPCMNI {
            full.add(IPCMNI, 0, 0, &root, Obj).unwrap();
        }
        assert_eq!(full.add(IPCMNI, 0, 0, &root, Obj).err(), Some(Errno::ENOSPC));
    }

    #[test]
    fn keys_creation_flags_and_limits() {
        let root = Credentials::root();
        let mut t: IdTable<Obj> = IdTable::default();
        let create = |t: &mut IdTable<Obj>| t.add(1, 42, 0o600, &root, Obj);
        assert_eq!(t.get_or_create(42, 0, &root, |_| Ok(()), create).err(), Some(Errno::ENOENT));
        let id = t.get_or_create(42, IPC_CREAT, &root, |_| Ok(()), create).unwrap();
        assert_eq!(t.get_or_create(42, 0, &root, |_| Ok(()), create), Ok(id));
        let excl = IPC_CREAT | IPC_EXCL;
        assert_eq!(t.get_or_create(42, excl, &root, |_| Ok(()), create).err(), Some(Errno::EEXIST));
        let private = |t: &mut IdTable<Obj>| t.add(1, 0, 0o600, &root, Obj);
        assert_eq!(t.get_or_create(0, 0, &root, |_| Ok(()), private).err(), Some(Errno::ENOSPC));
    }

    #[test]
    fn permissions_follow_owner_group_other_and_cap_ipc_owner() {
        let owner = Credentials::root();
        let mut t: IdTable<Obj> = IdTable::default();
        let id = t.add(10, 1, 0o640, &owner, Obj).unwrap();
        let p = t.get(id).unwrap().perm().clone();
        let mut user = Credentials::user(1000, 1000, vec![], None);
        assert!(!p.permits(&user, READ));
        user.groups.push(0);
        assert!(p.permits(&user, READ) && !p.permits(&user, WRITE));
        assert_eq!(p.check_owner(&user), Err(Errno::EPERM));
        let mut capable = Credentials::user(1000, 1000, vec![], Some(Capabilities::full()));
        capable.caps.effective.remove(Capability::SYS_ADMIN);
        assert!(capable.has_cap(CAP_IPC_OWNER) && p.permits(&capable, READ | WRITE));
        assert_eq!(p.check_owner(&capable), Err(Errno::EPERM));
        assert!(p.check_owner(&owner).is_ok());
    }
}
