//! Refresh: a guest restored from a snapshot learns who it is now. Every clone of one snapshot
//! wakes with the template's random number generator state, clock and host name, so the host
//! sends fresh entropy, the time, a host name, the virtio-fs tag to mount (when the template
//! booted with `ringfence.share_later=1`) and a generation number of its choosing.
//! [`RefreshConfig::parse`] checks the whole request; only then does [`apply`] change anything.

use std::fmt;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::AsRawFd;

use crate::container::ContainerError;
use crate::init::{self, BadHostname, Hostname};
use crate::proto;
use crate::steps::Steps;

/// The fewest random bytes a refresh takes: the kernel's CRNG wants 256 bits.
pub const MIN_ENTROPY: usize = 32;
/// The most: more would only cost time.
pub const MAX_ENTROPY: usize = 4096;
/// A virtio-fs tag's size limit (the device's config field).
const MAX_TAG: usize = 36;

/// `RNDADDENTROPY` = `_IOW('R', 0x03, int[2])` (linux/random.h; the libc crate lacks it).
const RNDADDENTROPY: libc::Ioctl = 0x4008_5203;
/// `RNDRESEEDCRNG` = `_IO('R', 0x07)`.
const RNDRESEEDCRNG: libc::Ioctl = 0x5207;

const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("entropy: {0} bytes; give {MIN_ENTROPY} to {MAX_ENTROPY}")]
    Entropy(usize),
    #[error("unix_time_ns {0} is before 1970")]
    Time(i64),
    #[error(transparent)]
    Hostname(#[from] BadHostname),
    #[error("share tag {0:?}: 1-{MAX_TAG} bytes, no spaces or control characters")]
    ShareTag(String),
    #[error("generation 0 means never refreshed: give another")]
    Generation,
    #[error("the shared directory has {mounted:?} mounted already, not {wanted:?}")]
    ShareBusy { mounted: String, wanted: String },
    #[error(transparent)]
    Share(#[from] ContainerError),
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: io::Error,
    },
}

impl RefreshError {
    /// True when the request itself was wrong (and nothing was changed).
    pub fn is_bad_request(&self) -> bool {
        matches!(
            self,
            RefreshError::Entropy(_)
                | RefreshError::Time(_)
                | RefreshError::Hostname(_)
                | RefreshError::ShareTag(_)
                | RefreshError::Generation
        )
    }
}

fn io_err(what: &'static str) -> impl FnOnce(io::Error) -> RefreshError {
    move |source| RefreshError::Io { what, source }
}

/// A checked Refresh request.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshConfig {
    pub entropy: Vec<u8>,
    /// Nanoseconds since 1970, when the clock is to be set.
    pub unix_time_ns: Option<i64>,
    pub hostname: Option<Hostname>,
    pub share_tag: Option<String>,
    pub generation: u64,
}

// The entropy stays out of logs.
impl fmt::Debug for RefreshConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshConfig")
            .field("entropy", &format_args!("<{} bytes>", self.entropy.len()))
            .field("unix_time_ns", &self.unix_time_ns)
            .field("hostname", &self.hostname)
            .field("share_tag", &self.share_tag)
            .field("generation", &self.generation)
            .finish()
    }
}

impl RefreshConfig {
    pub fn parse(r: proto::RefreshRequest) -> Result<RefreshConfig, RefreshError> {
        if r.generation == 0 {
            return Err(RefreshError::Generation);
        }
        if !(MIN_ENTROPY..=MAX_ENTROPY).contains(&r.entropy.len()) {
            return Err(RefreshError::Entropy(r.entropy.len()));
        }
        let unix_time_ns = match r.unix_time_ns {
            0 => None,
            t if t < 0 => return Err(RefreshError::Time(t)),
            t => Some(t),
        };
        let hostname = match r.hostname.as_str() {
            "" => None,
            h => Some(Hostname::parse(h)?),
        };
        let share_tag = match r.share_tag {
            t if t.is_empty() => None,
            t if t.len() > MAX_TAG || t.chars().any(|c| c.is_whitespace() || c.is_control()) => {
                return Err(RefreshError::ShareTag(t));
            }
            t => Some(t),
        };
        Ok(RefreshConfig {
            entropy: r.entropy,
            unix_time_ns,
            hostname,
            share_tag,
            generation: r.generation,
        })
    }
}

/// The kernel's boot_id (one per boot: every clone of a snapshot has its template's).
pub fn boot_id() -> Result<String, RefreshError> {
    let id = std::fs::read_to_string(BOOT_ID).map_err(io_err("reading the boot_id"))?;
    Ok(id.trim().to_owned())
}

/// Carries a checked refresh out: entropy and a reseed first, then the clock, the host name
/// and the shared directory.
/// Takes the identity; answers how long each step took.
pub fn apply(cfg: &RefreshConfig) -> Result<Steps, RefreshError> {
    let mut steps = Steps::start();
    let urandom = OpenOptions::new()
        .write(true)
        .open("/dev/urandom")
        .map_err(io_err("opening /dev/urandom"))?;
    let info = rand_pool_info(&cfg.entropy);
    // SAFETY: `info` is a struct rand_pool_info (entropy_count, buf_size, then buf_size bytes,
    // all within the vector), alive for the call; the kernel only reads it.
    if unsafe { libc::ioctl(urandom.as_raw_fd(), RNDADDENTROPY, info.as_ptr()) } != 0 {
        return Err(
            io_err("adding the host's entropy (RNDADDENTROPY)")(io::Error::last_os_error()),
        );
    }
    // SAFETY: RNDRESEEDCRNG takes no argument and touches no memory of ours.
    if unsafe { libc::ioctl(urandom.as_raw_fd(), RNDRESEEDCRNG) } != 0 {
        return Err(io_err("reseeding the CRNG (RNDRESEEDCRNG)")(io::Error::last_os_error()));
    }
    steps.lap("entropy");
    if let Some(ns) = cfg.unix_time_ns {
        set_clock(ns).map_err(io_err("setting the clock"))?;
    }
    steps.lap("clock");
    if let Some(h) = &cfg.hostname {
        h.set().map_err(io_err("setting the host name"))?;
    }
    steps.lap("hostname");
    if let Some(tag) = &cfg.share_tag {
        share(tag)?;
    }
    steps.lap("share");
    Ok(steps)
}

/// struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; } holding `bytes`,
/// every bit of them credited. The caller keeps `bytes` within [`MAX_ENTROPY`].
fn rand_pool_info(bytes: &[u8]) -> Vec<u32> {
    let mut info = Vec::with_capacity(2 + bytes.len().div_ceil(4));
    info.push((bytes.len() * 8) as u32);
    info.push(bytes.len() as u32);
    info.extend(bytes.chunks(4).map(|c| {
        let mut word = [0u8; 4];
        word[..c.len()].copy_from_slice(c);
        u32::from_ne_bytes(word)
    }));
    info
}

fn set_clock(unix_time_ns: i64) -> io::Result<()> {
    // SAFETY: timespec is plain data; all zeroes is a valid value.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    ts.tv_sec = unix_time_ns.div_euclid(1_000_000_000) as libc::time_t;
    ts.tv_nsec = unix_time_ns.rem_euclid(1_000_000_000) as libc::c_long;
    // SAFETY: `ts` is a valid timespec for the duration of the call.
    if unsafe { libc::clock_settime(libc::CLOCK_REALTIME, &ts) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Mounts `tag` at the shared directory, unless it is there already.
fn share(tag: &str) -> Result<(), RefreshError> {
    match init::shared_mount() {
        None => Ok(init::mount_shared(tag)?),
        Some((source, fstype)) if source == tag && fstype == "virtiofs" => Ok(()),
        Some((mounted, _)) => Err(RefreshError::ShareBusy { mounted, wanted: tag.to_owned() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> proto::RefreshRequest {
        proto::RefreshRequest {
            entropy: vec![7; 32],
            unix_time_ns: 1_700_000_000_123_456_789,
            hostname: "web-1".into(),
            share_tag: "pod".into(),
            generation: 3,
        }
    }

    #[test]
    fn a_whole_request_parses() {
        let c = RefreshConfig::parse(request()).unwrap();
        assert_eq!(c.entropy, vec![7; 32]);
        assert_eq!(c.unix_time_ns, Some(1_700_000_000_123_456_789));
        assert_eq!(c.hostname.as_ref().map(Hostname::as_str), Some("web-1"));
        assert_eq!(c.share_tag.as_deref(), Some("pod"));
        assert_eq!(c.generation, 3);
        // Empty and zero fields leave things alone.
        let bare = proto::RefreshRequest { entropy: vec![0; 64], generation: 1, ..request() };
        let bare = proto::RefreshRequest {
            unix_time_ns: 0,
            hostname: String::new(),
            share_tag: String::new(),
            ..bare
        };
        let c = RefreshConfig::parse(bare).unwrap();
        assert_eq!((c.unix_time_ns, c.hostname, c.share_tag), (None, None, None));
        // The entropy never reaches a log.
        let shown = format!("{:?}", RefreshConfig::parse(request()).unwrap());
        assert!(shown.contains("<32 bytes>") && !shown.contains("7, 7"), "{shown}");
    }

    #[test]
    fn entropy_is_32_to_4096_bytes() {
        for n in [0, 1, 31, MAX_ENTROPY + 1] {
            let r = proto::RefreshRequest { entropy: vec![1; n], ..request() };
            let e = RefreshConfig::parse(r).unwrap_err();
            assert!(matches!(e, RefreshError::Entropy(m) if m == n), "{n}: {e}");
            assert!(e.is_bad_request());
        }
        for n in [MIN_ENTROPY, 33, MAX_ENTROPY] {
            assert!(
                RefreshConfig::parse(proto::RefreshRequest { entropy: vec![1; n], ..request() })
                    .is_ok()
            );
        }
    }

    #[test]
    fn bad_fields_are_refused() {
        let bad = |r: proto::RefreshRequest| RefreshConfig::parse(r).unwrap_err();
        assert!(matches!(
            bad(proto::RefreshRequest { generation: 0, ..request() }),
            RefreshError::Generation
        ));
        assert!(matches!(
            bad(proto::RefreshRequest { unix_time_ns: -1, ..request() }),
            RefreshError::Time(-1)
        ));
        for h in ["-x", "a_b", "x..y", &"y".repeat(65)] {
            let e = bad(proto::RefreshRequest { hostname: h.into(), ..request() });
            assert!(matches!(e, RefreshError::Hostname(_)), "{h:?}: {e}");
        }
        for t in ["a b", "tab\t", "nul\0", &"t".repeat(37)] {
            let e = bad(proto::RefreshRequest { share_tag: t.into(), ..request() });
            assert!(matches!(e, RefreshError::ShareTag(_)), "{t:?}: {e}");
            assert!(e.is_bad_request());
        }
        assert!(
            !RefreshError::ShareBusy { mounted: "a".into(), wanted: "b".into() }.is_bad_request()
        );
    }

    #[test]
    fn the_pool_info_holds_every_byte_and_credits_every_bit() {
        let bytes: Vec<u8> = (1..=33).collect();
        let info = rand_pool_info(&bytes);
        assert_eq!(info.len(), 2 + 9);
        assert_eq!((info[0], info[1]), (33 * 8, 33));
        let back: Vec<u8> = info[2..].iter().flat_map(|w| w.to_ne_bytes()).collect();
        assert_eq!(&back[..33], &bytes[..]);
        assert_eq!(&back[33..], &[0, 0, 0]);
    }

    #[test]
    fn the_ioctl_numbers_are_linuxs() {
        // _IOC(dir, type, nr, size) = dir << 30 | size << 16 | type << 8 | nr.
        let ioc = |dir: libc::Ioctl, nr: libc::Ioctl, size: libc::Ioctl| {
            dir << 30 | size << 16 | libc::Ioctl::from(b'R') << 8 | nr
        };
        assert_eq!(RNDADDENTROPY, ioc(1, 0x03, 2 * 4));
        assert_eq!(RNDRESEEDCRNG, ioc(0, 0x07, 0));
    }
}
