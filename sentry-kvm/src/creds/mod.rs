//! Process credentials: user and group ids, supplementary groups, and capabilities
//! ([`caps`]). The sandbox starts as root of its own user view with every capability unless
//! the runtime says otherwise; set*id calls and execve move within it as Linux's rules allow.

pub mod caps;

use crate::abi::stat::{S_IFDIR, S_IFMT, S_ISGID, S_ISUID, Stat};
use caps::{CapSet, Capabilities, Capability};

/// Securebits (prctl PR_SET_SECUREBITS) the Sentry acts on.
pub const SECBIT_NOROOT: u32 = 1 << 0;
pub const SECBIT_NO_SETUID_FIXUP: u32 = 1 << 2;
pub const SECBIT_KEEP_CAPS: u32 = 1 << 4;
pub const SECBIT_NO_CAP_AMBIENT_RAISE: u32 = 1 << 6;
/// Every defined bit with its lock bit (the lock bits sit just above each flag).
pub const SECBITS_ALL: u32 = 0xff;

/// The ids a program file's set-user-ID and set-group-ID bits give on execve.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetIds {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

impl SetIds {
    /// From the file's metadata: set-group-ID counts only with group execute permission (its
    /// absence means mandatory locking).
    pub fn of(stat: &Stat) -> SetIds {
        SetIds {
            uid: (stat.mode & S_ISUID != 0).then_some(stat.uid),
            gid: (stat.mode & (S_ISGID | 0o010) == (S_ISGID | 0o010)).then_some(stat.gid),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub uid: u32,
    pub euid: u32,
    pub suid: u32,
    pub fsuid: u32,
    pub gid: u32,
    pub egid: u32,
    pub sgid: u32,
    pub fsgid: u32,
    pub groups: Vec<u32>,
    pub caps: Capabilities,
    pub securebits: u32,
}

impl Default for Credentials {
    fn default() -> Self {
        Self::root()
    }
}

impl Credentials {
    /// Root with every capability.
    pub fn root() -> Self {
        Self::user(0, 0, Vec::new(), None)
    }

    /// A process's starting identity. `caps` None: Linux's defaults for the uid (root holds
    /// everything, other users nothing).
    pub fn user(uid: u32, gid: u32, groups: Vec<u32>, caps: Option<Capabilities>) -> Self {
        let caps = caps.map(Capabilities::normalized).unwrap_or_else(|| {
            if uid == 0 { Capabilities::full() } else { Capabilities::unprivileged() }
        });
        Credentials {
            uid,
            euid: uid,
            suid: uid,
            fsuid: uid,
            gid,
            egid: gid,
            sgid: gid,
            fsgid: gid,
            groups,
            caps,
            securebits: 0,
        }
    }

    pub fn has_cap(&self, c: Capability) -> bool {
        self.caps.effective.has(c)
    }

    /// Checks `access` (bits 4=read, 2=write, 1=exec/search) to an object with `stat`: its
    /// mode bits for our fsuid/fsgid, else CAP_DAC_OVERRIDE (which never makes a file nobody
    /// may execute executable) or, for reading and searching, CAP_DAC_READ_SEARCH.
    pub fn may_access(&self, stat: &Stat, access: u32) -> bool {
        let bits = if stat.uid == self.euid {
            (stat.mode >> 6) & 7
        } else if stat.gid == self.egid || self.groups.contains(&stat.gid) {
            (stat.mode >> 3) & 7
        } else {
            stat.mode & 7
        };
        if bits & access == access {
            return true;
        }
        let is_dir = stat.mode & S_IFMT == S_IFDIR;
        if self.has_cap(Capability::DAC_OVERRIDE)
            && (access & 1 == 0 || is_dir || stat.mode & 0o111 != 0)
        {
            return true;
        }
        let read_search = if is_dir { 4 | 1 } else { 4 };
        access & !read_search == 0 && self.has_cap(Capability::DAC_READ_SEARCH)
    }

    /// Whether the caller owns an object owned by `uid`, or may act as if it did.
    pub fn owns_or(&self, uid: u32, cap: Capability) -> bool {
        self.euid == uid || self.has_cap(cap)
    }

    /// The credentials after execve of a file with set-id bits `file` (file capabilities do
    /// not exist in the Sentry). With no_new_privs, execve gains nothing: set-id bits are
    /// ignored and the permitted set cannot grow.
    pub fn exec(&mut self, file: SetIds, no_new_privs: bool) {
        let old = self.caps;
        let mut euid = file.uid.unwrap_or(self.euid);
        let mut egid = file.gid.unwrap_or(self.egid);
        let id_changed = euid != self.euid || egid != self.egid;
        let c = &mut self.caps;
        if id_changed {
            c.ambient = CapSet::EMPTY;
        }
        // Root is treated as running a file whose permitted and inheritable sets are full.
        let root_rules = self.securebits & SECBIT_NOROOT == 0;
        let (mut permitted, raise_effective) = if root_rules && (euid == 0 || self.uid == 0) {
            (c.inheritable.union(c.bounding), euid == 0)
        } else {
            (CapSet::EMPTY, false)
        };
        permitted = permitted.union(c.ambient);
        if no_new_privs && (id_changed || !permitted.is_subset(old.permitted)) {
            euid = self.uid;
            egid = self.gid;
            permitted = permitted.intersect(old.permitted);
        }
        c.permitted = permitted;
        c.effective = if raise_effective { permitted } else { c.ambient };
        self.securebits &= !SECBIT_KEEP_CAPS;
        (self.euid, self.suid, self.fsuid) = (euid, euid, euid);
        (self.egid, self.sgid, self.fsgid) = (egid, egid, egid);
    }

    /// Linux's capability fix-up after a change of user ids from `old`.
    pub fn fix_setuid(&mut self, old: &Credentials) {
        if self.securebits & SECBIT_NO_SETUID_FIXUP != 0 {
            return;
        }
        let was_root = old.uid == 0 || old.euid == 0 || old.suid == 0;
        let is_root = self.uid == 0 || self.euid == 0 || self.suid == 0;
        let c = &mut self.caps;
        if was_root && !is_root {
            if self.securebits & SECBIT_KEEP_CAPS == 0 {
                c.permitted = CapSet::EMPTY;
                c.effective = CapSet::EMPTY;
            }
            c.ambient = CapSet::EMPTY;
        }
        if old.euid == 0 && self.euid != 0 {
            c.effective = CapSet::EMPTY;
        }
        if old.euid != 0 && self.euid == 0 {
            c.effective = c.permitted;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(uid: u32, gid: u32, mode: u32) -> Stat {
        Stat { uid, gid, mode, ..Default::default() }
    }

    #[test]
    fn dac_override_is_a_capability_not_uid_0() {
        let root = Credentials::root();
        assert!(root.may_access(&st(5, 5, 0o100600), 4 | 2));
        assert!(!root.may_access(&st(5, 5, 0o100600), 1), "no one may execute it");
        let mut capless = Credentials::root();
        capless.caps = Capabilities::unprivileged();
        assert!(!capless.may_access(&st(5, 5, 0o100600), 4));
        capless.caps.effective.add(Capability::DAC_READ_SEARCH);
        assert!(capless.may_access(&st(5, 5, 0o100600), 4));
        assert!(!capless.may_access(&st(5, 5, 0o100600), 2));
        let user = Credentials::user(1000, 1000, vec![7], None);
        assert!(user.may_access(&st(1, 7, 0o100040), 4), "through a supplementary group");
    }

    #[test]
    fn execve_follows_linux_rules() {
        let none = SetIds::default();
        let mut root = Credentials::root();
        root.caps.bounding.remove(Capability::KILL);
        root.exec(none, false);
        assert!(!root.caps.permitted.has(Capability::KILL));
        assert_eq!(root.caps.effective, root.caps.permitted);

        let mut user = Credentials::user(1000, 1000, vec![], Some(Capabilities::full()));
        user.exec(none, false);
        assert_eq!(user.caps.permitted, CapSet::EMPTY, "non-root keeps only ambient");

        let mut c = Capabilities::full();
        c.inheritable.add(Capability::KILL);
        c.ambient.add(Capability::KILL);
        let mut user = Credentials::user(1000, 1000, vec![], Some(c));
        user.exec(none, false);
        assert!(
            user.caps.permitted.has(Capability::KILL) && user.caps.effective.has(Capability::KILL)
        );
        assert!(!user.caps.permitted.has(Capability::CHOWN));
    }

    #[test]
    fn set_user_id_files_raise_privilege_unless_no_new_privs() {
        let setuid_root = SetIds::of(&st(0, 0, 0o104755));
        assert_eq!(setuid_root, SetIds { uid: Some(0), gid: None });
        assert_eq!(SetIds::of(&st(0, 7, 0o102745)).gid, None, "no group execute: no setgid");

        let mut user = Credentials::user(1000, 1000, vec![], None);
        user.exec(setuid_root, false);
        assert_eq!((user.uid, user.euid, user.suid), (1000, 0, 0));
        assert_eq!(user.caps.effective, CapSet::FULL);

        let mut user = Credentials::user(1000, 1000, vec![], None);
        user.exec(setuid_root, true);
        assert_eq!((user.euid, user.suid), (1000, 1000));
        assert_eq!(user.caps.permitted, CapSet::EMPTY);

        // Root whose permitted set was narrowed gets it back on execve, unless no_new_privs.
        let mut root = Credentials::root();
        root.caps.permitted.remove(Capability::KILL);
        let mut again = root.clone();
        again.exec(SetIds::default(), false);
        assert!(again.caps.permitted.has(Capability::KILL));
        root.exec(SetIds::default(), true);
        assert!(
            !root.caps.permitted.has(Capability::KILL)
                && !root.caps.effective.has(Capability::KILL)
        );
    }

    #[test]
    fn leaving_root_drops_capabilities_unless_kept() {
        let old = Credentials::root();
        let mut new = old.clone();
        new.uid = 1000;
        new.euid = 1000;
        new.suid = 1000;
        new.fix_setuid(&old);
        assert_eq!(new.caps.permitted, CapSet::EMPTY);

        let mut old = Credentials::root();
        old.securebits |= SECBIT_KEEP_CAPS;
        let mut new = old.clone();
        (new.uid, new.euid, new.suid) = (1000, 1000, 1000);
        new.fix_setuid(&old);
        assert_eq!(new.caps.permitted, CapSet::FULL);
        assert_eq!(new.caps.effective, CapSet::EMPTY);

        // Only the effective uid leaves root: effective set emptied, then restored.
        let old = Credentials::root();
        let mut new = old.clone();
        new.euid = 1000;
        new.fix_setuid(&old);
        assert_eq!((new.caps.permitted, new.caps.effective), (CapSet::FULL, CapSet::EMPTY));
        let old2 = new.clone();
        new.euid = 0;
        new.fix_setuid(&old2);
        assert_eq!(new.caps.effective, CapSet::FULL);
    }
}
