//! Process credentials: user and group ids, supplementary groups, and capabilities
//! ([`caps`]). The sandbox starts as root of its own user view with every capability unless
//! the runtime says otherwise; set*id calls and execve move within it as Linux's rules allow.

pub mod caps;

use crate::abi::stat::{S_IFDIR, S_IFMT, Stat};
use caps::{CapSet, Capabilities, Capability};

/// Securebits (prctl PR_SET_SECUREBITS) the Sentry acts on.
pub const SECBIT_NOROOT: u32 = 1 << 0;
pub const SECBIT_NO_SETUID_FIXUP: u32 = 1 << 2;
pub const SECBIT_KEEP_CAPS: u32 = 1 << 4;
pub const SECBIT_NO_CAP_AMBIENT_RAISE: u32 = 1 << 6;
/// Every defined bit with its lock bit (the lock bits sit just above each flag).
pub const SECBITS_ALL: u32 = 0xff;

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

    /// The capability sets after execve of a file without file capabilities (the Sentry
    /// honours neither file capabilities nor set-user-ID bits, so execve never gains
    /// privilege beyond what root's rules give, and no_new_privs has nothing to refuse).
    pub fn exec(&mut self) {
        let c = &mut self.caps;
        let root_rules = self.securebits & SECBIT_NOROOT == 0;
        // Root is treated as running a file whose permitted and inheritable sets are full.
        let (permitted, effective) = if root_rules && (self.euid == 0 || self.uid == 0) {
            let p = c.inheritable.union(c.bounding).union(c.ambient);
            (p, if self.euid == 0 { p } else { c.ambient })
        } else {
            (c.ambient, c.ambient)
        };
        c.permitted = permitted;
        c.effective = effective;
        self.securebits &= !SECBIT_KEEP_CAPS;
        self.suid = self.euid;
        self.fsuid = self.euid;
        self.sgid = self.egid;
        self.fsgid = self.egid;
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
        let mut root = Credentials::root();
        root.caps.bounding.remove(Capability::KILL);
        root.exec();
        assert!(!root.caps.permitted.has(Capability::KILL));
        assert_eq!(root.caps.effective, root.caps.permitted);

        let mut user = Credentials::user(1000, 1000, vec![], Some(Capabilities::full()));
        user.exec();
        assert_eq!(user.caps.permitted, CapSet::EMPTY, "non-root keeps only ambient");

        let mut c = Capabilities::full();
        c.inheritable.add(Capability::KILL);
        c.ambient.add(Capability::KILL);
        let mut user = Credentials::user(1000, 1000, vec![], Some(c));
        user.exec();
        assert!(
            user.caps.permitted.has(Capability::KILL) && user.caps.effective.has(Capability::KILL)
        );
        assert!(!user.caps.permitted.has(Capability::CHOWN));
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
