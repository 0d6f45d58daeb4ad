//! Gofer messages and their byte encoding. Decoding never trusts lengths: a malformed message
//! is an error, never a panic or an out-of-bounds read.

use crate::abi::stat::{Stat, Timespec};
use crate::vfs::statfs::StatFs;

/// A node handle: an index into the Gofer's table of opened paths. 0 is the root.
pub type Handle = u32;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Looks up `name` in directory `dir`; answers `Node`.
    Walk { dir: Handle, name: Vec<u8> },
    /// Directory entries from index `cursor`; answers `Entries`.
    ReadDir { dir: Handle, cursor: u32 },
    /// Opens a regular file read-only; answers `Opened` with the descriptor attached.
    Open { node: Handle },
    /// Answers `Link`.
    ReadLink { node: Handle },
    /// Forgets a handle; answers `Ok`.
    Close { node: Handle },
    /// Attributes of a node; answers `Node` with the same handle.
    Stat { node: Handle },
    // Changes, served only for a writable mount (a read-only one answers EROFS).
    /// Opens a regular file for reading and writing (emptied first with `truncate`);
    /// answers `Opened` with the descriptor attached.
    OpenWrite { node: Handle, truncate: bool },
    /// Creates a regular file that must not exist; answers `Node` with a read-write
    /// descriptor attached.
    Create { dir: Handle, name: Vec<u8>, mode: u32 },
    /// Answers `Node`.
    Mkdir { dir: Handle, name: Vec<u8>, mode: u32 },
    /// Answers `Node`.
    Symlink { dir: Handle, name: Vec<u8>, target: Vec<u8> },
    /// Removes a name (a directory when `dir_entry` is set); answers `Ok`.
    Unlink { dir: Handle, name: Vec<u8>, directory: bool },
    /// Moves a name within the mount; answers `Ok`.
    Rename { dir: Handle, name: Vec<u8>, new_dir: Handle, new_name: Vec<u8> },
    /// Changes attributes (each field only when present); answers `Node`.
    SetAttr { node: Handle, attr: Attr },
    /// Statistics of the filesystem holding a node; answers `FsStats`.
    StatFs { node: Handle },
    /// Directory entries with their attributes from index `cursor` (a listing and a stat of
    /// each entry in one answer, so a tree walk costs a round trip per directory rather than
    /// per entry); answers `Listing`, as many entries as fit in [`LISTING_BYTES`].
    ReadDirPlus { dir: Handle, cursor: u32 },
}

/// Most bytes of entries one `Listing` answer carries (well under the channel's message size).
pub const LISTING_BYTES: usize = 128 * 1024;

/// Encoded size of a `Stat`.
const STAT_BYTES: usize = 8 * 3 + 4 * 3 + 8 * 4 + 16 * 3;

/// Encoded size of one `Listing` entry named `name`.
pub fn listing_entry_bytes(name: &[u8]) -> usize {
    4 + name.len() + STAT_BYTES
}

/// One entry of a `Listing`: a name and the attributes of what it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatEntry {
    pub name: Vec<u8>,
    pub stat: Stat,
}

/// Attribute changes a `SetAttr` carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attr {
    pub mode: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<Timespec>,
    pub mtime: Option<Timespec>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub name: Vec<u8>,
    pub d_type: u8,
    pub ino: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    Node {
        handle: Handle,
        stat: Stat,
    },
    Entries {
        entries: Vec<DirEntry>,
        done: bool,
    },
    Opened,
    Link(Vec<u8>),
    Ok,
    Error(i32),
    FsStats(StatFs),
    /// Entries of a `ReadDirPlus`; `next` is the cursor to continue from.
    Listing {
        entries: Vec<StatEntry>,
        next: u32,
        done: bool,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed gofer message")]
pub struct Malformed;

struct Enc(Vec<u8>);

impl Enc {
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
        self
    }
}

struct Dec<'a>(&'a [u8]);

impl Dec<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], Malformed> {
        if self.0.len() < n {
            return Err(Malformed);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, Malformed> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| Malformed)?))
    }
    fn u64(&mut self) -> Result<u64, Malformed> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().map_err(|_| Malformed)?))
    }
    fn bytes(&mut self) -> Result<Vec<u8>, Malformed> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
    /// A boolean byte: 0 or 1, nothing else.
    fn flag(&mut self) -> Result<bool, Malformed> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Malformed),
        }
    }
    fn end(&self) -> Result<(), Malformed> {
        if self.0.is_empty() { Ok(()) } else { Err(Malformed) }
    }
}

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc(Vec::new());
        match self {
            Request::Walk { dir, name } => e.u8(1).u32(*dir).bytes(name),
            Request::ReadDir { dir, cursor } => e.u8(2).u32(*dir).u32(*cursor),
            Request::Open { node } => e.u8(3).u32(*node),
            Request::ReadLink { node } => e.u8(4).u32(*node),
            Request::Close { node } => e.u8(5).u32(*node),
            Request::Stat { node } => e.u8(6).u32(*node),
            Request::OpenWrite { node, truncate } => e.u8(7).u32(*node).u8(u8::from(*truncate)),
            Request::Create { dir, name, mode } => e.u8(8).u32(*dir).bytes(name).u32(*mode),
            Request::Mkdir { dir, name, mode } => e.u8(9).u32(*dir).bytes(name).u32(*mode),
            Request::Symlink { dir, name, target } => e.u8(10).u32(*dir).bytes(name).bytes(target),
            Request::Unlink { dir, name, directory } => {
                e.u8(11).u32(*dir).bytes(name).u8(u8::from(*directory))
            }
            Request::Rename { dir, name, new_dir, new_name } => {
                e.u8(12).u32(*dir).bytes(name).u32(*new_dir).bytes(new_name)
            }
            Request::SetAttr { node, attr } => {
                e.u8(13).u32(*node);
                enc_opt(&mut e, attr.mode.map(u64::from));
                enc_opt(&mut e, attr.size);
                for t in [attr.atime, attr.mtime] {
                    enc_opt(&mut e, t.map(|t| t.sec as u64));
                    e.u64(t.map(|t| t.nsec as u64).unwrap_or(0));
                }
                &mut e
            }
            Request::StatFs { node } => e.u8(14).u32(*node),
            Request::ReadDirPlus { dir, cursor } => e.u8(15).u32(*dir).u32(*cursor),
        };
        e.0
    }

    pub fn decode(b: &[u8]) -> Result<Request, Malformed> {
        let mut d = Dec(b);
        let r = match d.u8()? {
            1 => Request::Walk { dir: d.u32()?, name: d.bytes()? },
            2 => Request::ReadDir { dir: d.u32()?, cursor: d.u32()? },
            3 => Request::Open { node: d.u32()? },
            4 => Request::ReadLink { node: d.u32()? },
            5 => Request::Close { node: d.u32()? },
            6 => Request::Stat { node: d.u32()? },
            7 => Request::OpenWrite { node: d.u32()?, truncate: d.flag()? },
            8 => Request::Create { dir: d.u32()?, name: d.bytes()?, mode: d.u32()? },
            9 => Request::Mkdir { dir: d.u32()?, name: d.bytes()?, mode: d.u32()? },
            10 => Request::Symlink { dir: d.u32()?, name: d.bytes()?, target: d.bytes()? },
            11 => Request::Unlink { dir: d.u32()?, name: d.bytes()?, directory: d.flag()? },
            12 => Request::Rename {
                dir: d.u32()?,
                name: d.bytes()?,
                new_dir: d.u32()?,
                new_name: d.bytes()?,
            },
            13 => {
                let node = d.u32()?;
                let mode = dec_opt(&mut d)?
                    .map(|m| u32::try_from(m).map_err(|_| Malformed))
                    .transpose()?;
                let size = dec_opt(&mut d)?;
                let mut times = [None, None];
                for t in &mut times {
                    let sec = dec_opt(&mut d)?;
                    let nsec = d.u64()?;
                    if nsec >= 1_000_000_000 {
                        return Err(Malformed);
                    }
                    *t = sec.map(|sec| Timespec { sec: sec as i64, nsec: nsec as i64 });
                }
                Request::SetAttr {
                    node,
                    attr: Attr { mode, size, atime: times[0], mtime: times[1] },
                }
            }
            14 => Request::StatFs { node: d.u32()? },
            15 => Request::ReadDirPlus { dir: d.u32()?, cursor: d.u32()? },
            _ => return Err(Malformed),
        };
        d.end()?;
        Ok(r)
    }
}

fn enc_opt(e: &mut Enc, v: Option<u64>) {
    match v {
        Some(v) => e.u8(1).u64(v),
        None => e.u8(0).u64(0),
    };
}

fn dec_opt(d: &mut Dec) -> Result<Option<u64>, Malformed> {
    let present = d.flag()?;
    let v = d.u64()?;
    Ok(present.then_some(v))
}

fn enc_stat(e: &mut Enc, s: &Stat) {
    e.u64(s.dev).u64(s.ino).u64(s.nlink).u32(s.mode).u32(s.uid).u32(s.gid).u64(s.rdev);
    e.u64(s.size as u64).u64(s.blksize as u64).u64(s.blocks as u64);
    for t in [s.atime, s.mtime, s.ctime] {
        e.u64(t.sec as u64).u64(t.nsec as u64);
    }
}

fn dec_stat(d: &mut Dec) -> Result<Stat, Malformed> {
    let mut s = Stat {
        dev: d.u64()?,
        ino: d.u64()?,
        nlink: d.u64()?,
        mode: d.u32()?,
        uid: d.u32()?,
        gid: d.u32()?,
        rdev: d.u64()?,
        size: d.u64()? as i64,
        blksize: d.u64()? as i64,
        blocks: d.u64()? as i64,
        ..Default::default()
    };
    let mut ts = || -> Result<Timespec, Malformed> {
        Ok(Timespec { sec: d.u64()? as i64, nsec: d.u64()? as i64 })
    };
    s.atime = ts()?;
    s.mtime = ts()?;
    s.ctime = ts()?;
    Ok(s)
}

impl Response {
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc(Vec::new());
        match self {
            Response::Node { handle, stat } => {
                e.u8(1).u32(*handle);
                enc_stat(&mut e, stat);
            }
            Response::Entries { entries, done } => {
                e.u8(2).u8(u8::from(*done)).u32(entries.len() as u32);
                for x in entries {
                    e.bytes(&x.name).u8(x.d_type).u64(x.ino);
                }
            }
            Response::Opened => {
                e.u8(3);
            }
            Response::Link(t) => {
                e.u8(4).bytes(t);
            }
            Response::Ok => {
                e.u8(5);
            }
            Response::Error(errno) => {
                e.u8(6).u32(*errno as u32);
            }
            Response::FsStats(s) => {
                e.u8(7);
                for v in s.fields() {
                    e.u64(v);
                }
            }
            Response::Listing { entries, next, done } => {
                e.u8(8).u8(u8::from(*done)).u32(*next).u32(entries.len() as u32);
                for x in entries {
                    e.bytes(&x.name);
                    enc_stat(&mut e, &x.stat);
                }
            }
        }
        e.0
    }

    pub fn decode(b: &[u8]) -> Result<Response, Malformed> {
        let mut d = Dec(b);
        let r = match d.u8()? {
            1 => Response::Node { handle: d.u32()?, stat: dec_stat(&mut d)? },
            2 => {
                let done = d.u8()? != 0;
                let n = d.u32()? as usize;
                let mut entries = Vec::with_capacity(n.min(4096));
                for _ in 0..n {
                    entries.push(DirEntry { name: d.bytes()?, d_type: d.u8()?, ino: d.u64()? });
                }
                Response::Entries { entries, done }
            }
            3 => Response::Opened,
            4 => Response::Link(d.bytes()?),
            5 => Response::Ok,
            6 => Response::Error(d.u32()? as i32),
            7 => {
                let mut f = [0u64; 11];
                for v in &mut f {
                    *v = d.u64()?;
                }
                Response::FsStats(StatFs::from_fields(f))
            }
            8 => {
                let done = d.flag()?;
                let next = d.u32()?;
                let n = d.u32()? as usize;
                // Each entry takes at least STAT_BYTES: a count beyond what the message holds
                // is malformed, not an allocation.
                if n > d.0.len() / STAT_BYTES {
                    return Err(Malformed);
                }
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    entries.push(StatEntry { name: d.bytes()?, stat: dec_stat(&mut d)? });
                }
                Response::Listing { entries, next, done }
            }
            _ => return Err(Malformed),
        };
        d.end()?;
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let reqs = [
            Request::Walk { dir: 3, name: b"busybox".to_vec() },
            Request::ReadDir { dir: 0, cursor: 7 },
            Request::Open { node: 9 },
            Request::ReadLink { node: 1 },
            Request::Close { node: 2 },
            Request::Stat { node: 0 },
            Request::OpenWrite { node: 4, truncate: true },
            Request::Create { dir: 0, name: b"f".to_vec(), mode: 0o644 },
            Request::Mkdir { dir: 1, name: b"d".to_vec(), mode: 0o755 },
            Request::Symlink { dir: 1, name: b"l".to_vec(), target: b"../x".to_vec() },
            Request::Unlink { dir: 1, name: b"d".to_vec(), directory: true },
            Request::Rename { dir: 1, name: b"a".to_vec(), new_dir: 2, new_name: b"b".to_vec() },
            Request::StatFs { node: 6 },
            Request::ReadDirPlus { dir: 4, cursor: 512 },
            Request::SetAttr {
                node: 3,
                attr: Attr {
                    mode: Some(0o600),
                    size: None,
                    atime: Some(Timespec { sec: 5, nsec: 6 }),
                    mtime: None,
                },
            },
        ];
        for r in reqs {
            assert_eq!(Request::decode(&r.encode()), Ok(r));
        }
        let stat = Stat { ino: 42, mode: 0o100755, size: 1234, ..Default::default() };
        let resps = [
            Response::Node { handle: 5, stat },
            Response::Entries {
                entries: vec![DirEntry { name: b"a".to_vec(), d_type: 8, ino: 1 }],
                done: true,
            },
            Response::Link(b"/x".to_vec()),
            Response::Error(2),
            Response::Listing {
                entries: vec![
                    StatEntry { name: b"a".to_vec(), stat },
                    StatEntry { name: b"bin".to_vec(), stat: Stat { ino: 7, ..stat } },
                ],
                next: 9,
                done: false,
            },
            Response::FsStats(StatFs {
                kind: 0xef53,
                bsize: 4096,
                blocks: 9,
                ..Default::default()
            }),
        ];
        for r in resps {
            assert_eq!(Response::decode(&r.encode()), Ok(r));
        }
    }

    #[test]
    fn truncated_and_trailing_bytes_are_rejected() {
        let b = Request::Walk { dir: 1, name: b"abc".to_vec() }.encode();
        for n in 0..b.len() {
            assert_eq!(Request::decode(&b[..n]), Err(Malformed));
        }
        let mut long = b.clone();
        long.push(0);
        assert_eq!(Request::decode(&long), Err(Malformed));
        // A length prefix far beyond the message.
        assert_eq!(Request::decode(&[1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]), Err(Malformed));
        assert_eq!(Response::decode(&[2, 1, 0xff, 0xff, 0xff, 0xff]), Err(Malformed));
        assert_eq!(Response::decode(&[8, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]), Err(Malformed));
        let listing = Response::Listing {
            entries: vec![StatEntry { name: b"x".to_vec(), stat: Stat::default() }],
            next: 1,
            done: true,
        }
        .encode();
        assert_eq!(listing.len(), 10 + listing_entry_bytes(b"x"));
        for n in 0..listing.len() {
            assert_eq!(Response::decode(&listing[..n]), Err(Malformed));
        }
        // Booleans are 0 or 1; nanoseconds stay below a second; modes fit 32 bits.
        assert_eq!(Request::decode(&[7, 0, 0, 0, 0, 2]), Err(Malformed));
        let mut attr = Request::SetAttr { node: 0, attr: Attr::default() }.encode();
        attr[1 + 4 + 9 + 9 + 1 + 8] = 0xff;
        attr[1 + 4 + 9 + 9 + 1 + 8 + 7] = 0xff;
        assert_eq!(Request::decode(&attr), Err(Malformed));
        let mut mode = Request::SetAttr { node: 0, attr: Attr::default() }.encode();
        mode[5] = 1;
        mode[10] = 1;
        assert_eq!(Request::decode(&mode), Err(Malformed));
    }
}
