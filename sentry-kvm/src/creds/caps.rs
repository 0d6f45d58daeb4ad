//! Linux capabilities: the numbered privileges, a set of them, and a task's five sets.
//!
//! File capabilities (security.capability xattrs) do not exist in the Sentry: its objects
//! carry no extended attributes, so execve sees every file as having none.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One capability, by number (`CAP_CHOWN` is 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Capability(u8);

/// The names of capabilities 0..=CAP_LAST_CAP, without their `CAP_` prefix (Linux 6.1).
const NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

impl Capability {
    pub const CHOWN: Capability = Capability(0);
    pub const DAC_OVERRIDE: Capability = Capability(1);
    pub const DAC_READ_SEARCH: Capability = Capability(2);
    pub const FOWNER: Capability = Capability(3);
    pub const KILL: Capability = Capability(5);
    pub const SETGID: Capability = Capability(6);
    pub const SETUID: Capability = Capability(7);
    pub const SETPCAP: Capability = Capability(8);
    pub const NET_BIND_SERVICE: Capability = Capability(10);
    pub const IPC_LOCK: Capability = Capability(14);
    pub const IPC_OWNER: Capability = Capability(15);
    pub const SYS_CHROOT: Capability = Capability(18);
    pub const SYS_ADMIN: Capability = Capability(21);
    pub const SYS_NICE: Capability = Capability(23);
    pub const SYS_RESOURCE: Capability = Capability(24);
    pub const MKNOD: Capability = Capability(27);

    /// The highest capability number this kernel knows (CAP_CHECKPOINT_RESTORE).
    pub const LAST: u8 = (NAMES.len() - 1) as u8;

    /// The capability numbered `n`, if there is one.
    pub fn from_number(n: u64) -> Option<Capability> {
        (n <= u64::from(Self::LAST)).then_some(Capability(n as u8))
    }

    pub fn number(self) -> u8 {
        self.0
    }

    fn bit(self) -> u64 {
        1 << self.0
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CAP_{}", NAMES[usize::from(self.0)])
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown capability {0:?}")]
pub struct UnknownCapability(pub String);

/// Accepts `CAP_NET_RAW`, `NET_RAW` and `net_raw`.
impl FromStr for Capability {
    type Err = UnknownCapability;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let up = s.to_ascii_uppercase();
        let bare = up.strip_prefix("CAP_").unwrap_or(&up);
        NAMES
            .iter()
            .position(|n| *n == bare)
            .map(|i| Capability(i as u8))
            .ok_or_else(|| UnknownCapability(s.to_string()))
    }
}

/// A set of capabilities (bit n: capability n).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CapSet(u64);

impl CapSet {
    pub const EMPTY: CapSet = CapSet(0);
    pub const FULL: CapSet = CapSet((1 << (Capability::LAST as u64 + 1)) - 1);

    /// The set whose bits are `bits`, minus any beyond the last capability.
    pub fn from_bits(bits: u64) -> CapSet {
        CapSet(bits & Self::FULL.0)
    }

    pub fn bits(self) -> u64 {
        self.0
    }

    pub fn has(self, c: Capability) -> bool {
        self.0 & c.bit() != 0
    }

    pub fn add(&mut self, c: Capability) {
        self.0 |= c.bit();
    }

    pub fn remove(&mut self, c: Capability) {
        self.0 &= !c.bit();
    }

    pub fn union(self, o: CapSet) -> CapSet {
        CapSet(self.0 | o.0)
    }

    pub fn intersect(self, o: CapSet) -> CapSet {
        CapSet(self.0 & o.0)
    }

    pub fn is_subset(self, o: CapSet) -> bool {
        self.0 & !o.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Capability> {
        (0..=Capability::LAST).map(Capability).filter(move |c| self.has(*c))
    }
}

impl FromIterator<Capability> for CapSet {
    fn from_iter<I: IntoIterator<Item = Capability>>(iter: I) -> Self {
        let mut s = CapSet::EMPTY;
        for c in iter {
            s.add(c);
        }
        s
    }
}

/// Serialized as a list of names (`["CAP_CHOWN", "CAP_KILL"]`), as OCI and the CRI give them.
impl Serialize for CapSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter().map(|c| c.to_string()))
    }
}

impl<'de> Deserialize<'de> for CapSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        names.iter().map(|n| n.parse::<Capability>().map_err(serde::de::Error::custom)).collect()
    }
}

/// A task's capability sets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Capabilities {
    pub effective: CapSet,
    pub permitted: CapSet,
    pub inheritable: CapSet,
    pub bounding: CapSet,
    pub ambient: CapSet,
}

impl Capabilities {
    /// Everything: what root has in a sandbox nobody restricted.
    pub fn full() -> Self {
        Capabilities {
            effective: CapSet::FULL,
            permitted: CapSet::FULL,
            inheritable: CapSet::EMPTY,
            bounding: CapSet::FULL,
            ambient: CapSet::EMPTY,
        }
    }

    /// The set container runtimes give a container unless told otherwise (the CRI's starting
    /// point before a pod's `add`/`drop`): ownership and permission overrides, set*id, kill,
    /// mknod, raw sockets, privileged ports, chroot and audit writes; none of the
    /// administrative capabilities.
    pub fn container_default() -> Self {
        const NAMES: [&str; 14] = [
            "CHOWN",
            "DAC_OVERRIDE",
            "FSETID",
            "FOWNER",
            "MKNOD",
            "NET_RAW",
            "SETGID",
            "SETUID",
            "SETFCAP",
            "SETPCAP",
            "NET_BIND_SERVICE",
            "SYS_CHROOT",
            "KILL",
            "AUDIT_WRITE",
        ];
        let set: CapSet = NAMES.iter().filter_map(|n| n.parse().ok()).collect();
        Capabilities { effective: set, permitted: set, bounding: set, ..Default::default() }
    }

    /// What a non-root user has by default: nothing, under a full bounding set.
    pub fn unprivileged() -> Self {
        Capabilities { bounding: CapSet::FULL, ..Default::default() }
    }

    /// Keeps Linux's invariant: ambient capabilities are both permitted and inheritable.
    pub fn normalized(mut self) -> Self {
        self.ambient = self.ambient.intersect(self.permitted).intersect(self.inheritable);
        self.effective = self.effective.intersect(self.permitted);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_in_every_spelling_and_print_with_the_prefix() {
        assert_eq!("CAP_NET_RAW".parse::<Capability>().unwrap().number(), 13);
        assert_eq!("net_raw".parse::<Capability>().unwrap().number(), 13);
        assert_eq!("CHECKPOINT_RESTORE".parse::<Capability>().unwrap().number(), 40);
        assert!("CAP_NOPE".parse::<Capability>().is_err());
        assert_eq!(Capability::SYS_ADMIN.to_string(), "CAP_SYS_ADMIN");
        assert_eq!(CapSet::FULL.bits(), 0x1ff_ffff_ffff);
        assert_eq!(Capability::from_number(41), None);
    }

    #[test]
    fn sets_round_trip_as_name_lists() {
        let s: CapSet = [Capability::CHOWN, Capability::KILL].into_iter().collect();
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(j, r#"["CAP_CHOWN","CAP_KILL"]"#);
        assert_eq!(serde_json::from_str::<CapSet>(&j).unwrap(), s);
        assert!(serde_json::from_str::<CapSet>(r#"["CAP_BOGUS"]"#).is_err());
        let d = Capabilities::container_default();
        assert_eq!(d.bounding.iter().count(), 14);
        assert!(d.effective.has(Capability::KILL) && !d.effective.has(Capability::SYS_ADMIN));
        let c: Capabilities = serde_json::from_str(r#"{"bounding":["NET_RAW"]}"#).unwrap();
        assert!(c.bounding.has("NET_RAW".parse().unwrap()) && c.effective == CapSet::EMPTY);
    }
}
