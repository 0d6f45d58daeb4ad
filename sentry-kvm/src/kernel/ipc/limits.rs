//! The IPC namespace's limits: the values of /proc/sys/kernel/{shm*,msg*,sem}, with Linux's
//! defaults and its validation of written values. The same parser checks the sysctls a pod
//! asks for before its sandbox starts, so a value Linux would refuse never reaches a sandbox.

use serde::{Deserialize, Serialize};

/// Most objects of one kind (IPCMNI): ids keep their index in the low 15 bits.
pub const IPCMNI: i32 = 32768;

/// The limits, with the types and ranges of Linux's sysctls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IpcLimits {
    /// Largest segment, in bytes.
    pub shmmax: u64,
    /// Pages of all segments together.
    pub shmall: u64,
    /// Most segments.
    pub shmmni: i32,
    /// Segments are destroyed once nothing is attached, even without IPC_RMID.
    pub shm_rmid_forced: i32,
    /// Largest message, in bytes.
    pub msgmax: i32,
    /// Bytes a new queue may hold.
    pub msgmnb: i32,
    /// Most queues.
    pub msgmni: i32,
    /// Semaphores in a set.
    pub semmsl: i32,
    /// Semaphores in all sets.
    pub semmns: i32,
    /// Operations in one semop.
    pub semopm: i32,
    /// Most semaphore sets.
    pub semmni: i32,
}

impl Default for IpcLimits {
    /// Linux's defaults (include/uapi/linux/{shm,msg,sem}.h).
    fn default() -> Self {
        IpcLimits {
            shmmax: u64::MAX - (1 << 24),
            shmall: u64::MAX - (1 << 24),
            shmmni: 4096,
            shm_rmid_forced: 0,
            msgmax: 8192,
            msgmnb: 16384,
            msgmni: 32000,
            semmsl: 32000,
            semmns: 1_024_000_000,
            semopm: 500,
            semmni: 32000,
        }
    }
}

/// One of the sysctls, by its name under /proc/sys/kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpcSysctl {
    ShmMax,
    ShmAll,
    ShmMni,
    ShmRmidForced,
    MsgMax,
    MsgMnb,
    MsgMni,
    Sem,
}

/// Why a value is refused (the write fails with EINVAL, as on Linux).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("kernel.{name}: {value:?} is not a valid value ({why})")]
pub struct InvalidValue {
    pub name: &'static str,
    pub value: String,
    pub why: &'static str,
    /// A number out of the range the kernel accepts for it (ERANGE rather than EINVAL).
    pub range: bool,
}

impl IpcSysctl {
    pub const ALL: [IpcSysctl; 8] = [
        IpcSysctl::ShmMax,
        IpcSysctl::ShmAll,
        IpcSysctl::ShmMni,
        IpcSysctl::ShmRmidForced,
        IpcSysctl::MsgMax,
        IpcSysctl::MsgMnb,
        IpcSysctl::MsgMni,
        IpcSysctl::Sem,
    ];

    /// The file name under /proc/sys/kernel.
    pub fn name(self) -> &'static str {
        match self {
            IpcSysctl::ShmMax => "shmmax",
            IpcSysctl::ShmAll => "shmall",
            IpcSysctl::ShmMni => "shmmni",
            IpcSysctl::ShmRmidForced => "shm_rmid_forced",
            IpcSysctl::MsgMax => "msgmax",
            IpcSysctl::MsgMnb => "msgmnb",
            IpcSysctl::MsgMni => "msgmni",
            IpcSysctl::Sem => "sem",
        }
    }

    pub fn from_name(name: &str) -> Option<IpcSysctl> {
        IpcSysctl::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The file's contents.
    pub fn render(self, l: &IpcLimits) -> String {
        match self {
            IpcSysctl::ShmMax => format!("{}\n", l.shmmax),
            IpcSysctl::ShmAll => format!("{}\n", l.shmall),
            IpcSysctl::ShmMni => format!("{}\n", l.shmmni),
            IpcSysctl::ShmRmidForced => format!("{}\n", l.shm_rmid_forced),
            IpcSysctl::MsgMax => format!("{}\n", l.msgmax),
            IpcSysctl::MsgMnb => format!("{}\n", l.msgmnb),
            IpcSysctl::MsgMni => format!("{}\n", l.msgmni),
            IpcSysctl::Sem => format!("{}\t{}\t{}\t{}\n", l.semmsl, l.semmns, l.semopm, l.semmni),
        }
    }

    /// How many numbers the file holds.
    fn arity(self) -> usize {
        if self == IpcSysctl::Sem { 4 } else { 1 }
    }

    /// Applies a value written to the file, as Linux does: numbers past the file's own are
    /// ignored, an empty write changes nothing, and a refused value leaves `l` as it was,
    /// except that an out-of-range semmni refuses only itself (ERANGE, the other three of
    /// `sem` stay applied).
    pub fn apply(self, l: &mut IpcLimits, text: &str) -> Result<(), InvalidValue> {
        let bad =
            |why| InvalidValue { name: self.name(), value: text.to_string(), why, range: false };
        let words: Vec<&str> = text.split_ascii_whitespace().take(self.arity()).collect();
        let Some(first) = words.first() else { return Ok(()) };
        let int = |min: i64, max: i64| -> Result<i32, InvalidValue> {
            let v = signed(first).map_err(bad)?;
            if (min..=max).contains(&v) { Ok(v as i32) } else { Err(bad("out of range")) }
        };
        match self {
            IpcSysctl::ShmMax => l.shmmax = parse_unsigned(first).map_err(bad)?,
            IpcSysctl::ShmAll => l.shmall = parse_unsigned(first).map_err(bad)?,
            IpcSysctl::ShmMni => l.shmmni = int(0, IPCMNI.into())?,
            IpcSysctl::ShmRmidForced => l.shm_rmid_forced = int(0, 1)?,
            IpcSysctl::MsgMax => l.msgmax = int(0, i32::MAX.into())?,
            IpcSysctl::MsgMnb => l.msgmnb = int(0, i32::MAX.into())?,
            IpcSysctl::MsgMni => l.msgmni = int(0, IPCMNI.into())?,
            IpcSysctl::Sem => {
                let mut n = [l.semmsl, l.semmns, l.semopm, l.semmni];
                for (slot, w) in n.iter_mut().zip(&words) {
                    let v = signed(w).map_err(bad)?;
                    *slot = i32::try_from(v).map_err(|_| bad("out of range"))?;
                }
                let semmni_ok = (0..=IPCMNI).contains(&n[3]);
                if !semmni_ok {
                    n[3] = l.semmni;
                }
                [l.semmsl, l.semmns, l.semopm, l.semmni] = n;
                if !semmni_ok {
                    return Err(InvalidValue { range: true, ..bad("semmni out of range") });
                }
            }
        }
        Ok(())
    }

    /// Checks a value given ahead of time (a pod's sysctl): as [`IpcSysctl::apply`] would take
    /// it, and with exactly the file's numbers (one, or one to four for `sem`), none ignored.
    pub fn check(self, text: &str) -> Result<(), InvalidValue> {
        let bad =
            |why| InvalidValue { name: self.name(), value: text.to_string(), why, range: false };
        let count = text.split_ascii_whitespace().count();
        if count == 0 || count > self.arity() {
            return Err(bad(if self == IpcSysctl::Sem {
                "one to four numbers expected"
            } else {
                "one number expected"
            }));
        }
        self.apply(&mut IpcLimits::default(), text)
    }
}

/// A setting of one IPC sysctl, `kernel.NAME=VALUE` (or `kernel/NAME=VALUE`), as the
/// sandbox's command line and a pod's sysctls give it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpcSetting {
    pub sysctl: IpcSysctl,
    pub value: String,
}

impl IpcSetting {
    /// The sysctl named `name` (dotted or slashed), if it is an IPC one this kernel has.
    pub fn sysctl_named(name: &str) -> Option<IpcSysctl> {
        let rest = name.strip_prefix("kernel.").or_else(|| name.strip_prefix("kernel/"))?;
        IpcSysctl::from_name(rest)
    }
}

impl std::str::FromStr for IpcSetting {
    type Err = String;

    /// Parses and validates `kernel.NAME=VALUE`.
    fn from_str(s: &str) -> Result<IpcSetting, String> {
        let (name, value) =
            s.split_once('=').ok_or_else(|| format!("{s:?}: expected NAME=VALUE"))?;
        let sysctl = IpcSetting::sysctl_named(name).ok_or_else(|| {
            format!("{name:?} is not an IPC sysctl (kernel.shmmax, kernel.shmall, kernel.shmmni, kernel.shm_rmid_forced, kernel.msgmax, kernel.msgmnb, kernel.msgmni, kernel.sem)")
        })?;
        sysctl.check(value).map_err(|e| e.to_string())?;
        Ok(IpcSetting { sysctl, value: value.to_string() })
    }
}

impl std::fmt::Display for IpcSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "kernel.{}={}", self.sysctl.name(), self.value)
    }
}

impl IpcLimits {
    /// Linux's defaults with `settings` applied in order.
    pub fn with(settings: &[IpcSetting]) -> Result<IpcLimits, InvalidValue> {
        let mut l = IpcLimits::default();
        for s in settings {
            s.sysctl.apply(&mut l, &s.value)?;
        }
        Ok(l)
    }
}

/// Parses an integer as the kernel's proc handlers do: an optional minus, then decimal, octal
/// (leading 0) or hex (0x).
fn signed(w: &str) -> Result<i64, &'static str> {
    let (neg, digits) = match w.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, w),
    };
    let v = i64::try_from(parse_unsigned(digits)?).map_err(|_| "out of range")?;
    Ok(if neg { -v } else { v })
}

/// An unsigned long (a minus is refused).
fn parse_unsigned(w: &str) -> Result<u64, &'static str> {
    let (radix, digits) = if let Some(h) = w.strip_prefix("0x").or_else(|| w.strip_prefix("0X")) {
        (16, h)
    } else if w.len() > 1 && w.starts_with('0') {
        (8, &w[1..])
    } else {
        (10, w)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err("not a number");
    }
    u64::from_str_radix(digits, radix).map_err(|_| "out of range")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_render_as_linux_shows_them() {
        let l = IpcLimits::default();
        assert_eq!(IpcSysctl::ShmMax.render(&l), "18446744073692774399\n");
        assert_eq!(IpcSysctl::Sem.render(&l), "32000\t1024000000\t500\t32000\n");
        assert_eq!(IpcSysctl::MsgMni.render(&l), "32000\n");
    }

    #[test]
    fn writes_are_validated_and_bad_ones_change_nothing() {
        let mut l = IpcLimits::default();
        IpcSysctl::ShmMax.apply(&mut l, "1048576\n").unwrap();
        assert_eq!(l.shmmax, 1 << 20);
        IpcSysctl::Sem.apply(&mut l, "250 256000\t32").unwrap();
        assert_eq!((l.semmsl, l.semmns, l.semopm, l.semmni), (250, 256000, 32, 32000));
        IpcSysctl::MsgMax.apply(&mut l, "0x100").unwrap();
        assert_eq!(l.msgmax, 256);
        IpcSysctl::MsgMax.apply(&mut l, "010 99").unwrap();
        assert_eq!(l.msgmax, 8, "octal, and numbers past the file's own are ignored");
        IpcSysctl::MsgMax.apply(&mut l, "").unwrap();
        assert_eq!(l.msgmax, 8);
        let before = l;
        for (s, v) in [
            (IpcSysctl::ShmMax, "-1"),
            (IpcSysctl::ShmMax, "-0"),
            (IpcSysctl::ShmMax, "12abc"),
            (IpcSysctl::ShmMax, "99999999999999999999999"),
            (IpcSysctl::ShmMni, "32769"),
            (IpcSysctl::MsgMni, "-1"),
            (IpcSysctl::ShmRmidForced, "2"),
            (IpcSysctl::MsgMnb, "2147483648"),
            (IpcSysctl::Sem, "1 2 x"),
        ] {
            assert!(s.apply(&mut l, v).is_err(), "{s:?} {v:?}");
        }
        assert_eq!(l, before);
        // Linux keeps the first three of sem and refuses only semmni.
        let e = IpcSysctl::Sem.apply(&mut l, "1 2 3 40000").unwrap_err();
        assert!(e.range);
        assert_eq!((l.semmsl, l.semmns, l.semopm, l.semmni), (1, 2, 3, 32000));
    }

    #[test]
    fn values_given_ahead_are_checked_strictly() {
        assert!(IpcSysctl::MsgMax.check("4096").is_ok());
        assert!(IpcSysctl::Sem.check("250 256000 32 128").is_ok());
        for (s, v) in [
            (IpcSysctl::MsgMax, ""),
            (IpcSysctl::MsgMax, "1 2"),
            (IpcSysctl::Sem, "1 2 3 4 5"),
            (IpcSysctl::Sem, "1 2 3 40000"),
        ] {
            assert!(s.check(v).is_err(), "{s:?} {v:?}");
        }
    }

    #[test]
    fn settings_parse_validate_and_print_back() {
        let s: IpcSetting = "kernel.shmmax=1048576".parse().unwrap();
        assert_eq!(s.sysctl, IpcSysctl::ShmMax);
        assert_eq!(s.to_string(), "kernel.shmmax=1048576");
        let sem: IpcSetting = "kernel/sem=250 256000 32 128".parse().unwrap();
        let l = IpcLimits::with(&[s, sem]).unwrap();
        assert_eq!((l.shmmax, l.semmni), (1 << 20, 128));
        assert!("kernel.shmmax=-5".parse::<IpcSetting>().is_err());
        assert!("kernel.hostname=x".parse::<IpcSetting>().is_err());
        assert!("fs.mqueue.msg_max=10".parse::<IpcSetting>().is_err());
        assert!("kernel.msgmax".parse::<IpcSetting>().is_err());
    }

    #[test]
    fn names_round_trip() {
        for s in IpcSysctl::ALL {
            assert_eq!(IpcSysctl::from_name(s.name()), Some(s));
        }
        assert_eq!(IpcSysctl::from_name("shmfoo"), None);
    }
}
