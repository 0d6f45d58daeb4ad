//! A block request read off a gathered chain and checked against the disk before anything is
//! done: the header, where the data and the status byte are, and the bounds. Kept apart from
//! the device so it can be fuzzed on its own.

use virtio_bindings::bindings::virtio_blk::{
    VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_FLUSH,
    VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_WRITE_ZEROES,
};
use vm_memory::{Address, GuestAddress};

use crate::GuestMem;
use crate::iov;
use crate::queue::Buffer;

pub const SECTOR: u64 = 512;
/// The header: type, reserved, sector.
pub const HEADER_LEN: u64 = 16;
/// One discard or write-zeroes range: sector, sector count, flags.
pub const SEGMENT_LEN: u64 = 16;
/// The most data one request may move (the event loop must not stall on one guest).
pub const MAX_DATA: u64 = 64 << 20;
/// Data segments a request may have (announced as seg_max).
pub const SEG_MAX: u32 = 126;
/// Discard / write-zeroes ranges per request (announced in the config).
pub const MAX_RANGES: u32 = 1;
/// The serial GET_ID returns is at most this long.
pub const ID_LEN: usize = 20;
const WRITE_ZEROES_UNMAP: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    In,
    Out,
    Flush,
    GetId,
    Discard,
    WriteZeroes { unmap: bool },
}

/// A checked request. Data is bytes `data_skip..data_skip+data_len` of the readable (Out,
/// discard, write zeroes) or writable (In, GetId) buffers; the status byte is at `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub kind: Kind,
    pub sector: u64,
    pub data_len: u64,
    pub data_skip: u64,
    pub status: GuestAddress,
    /// For discard and write zeroes: the range, in sectors.
    pub range: (u64, u64),
}

/// Why a request is refused: the status to answer with, if there is a status byte at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("no device-writable status byte")]
    NoStatus,
    #[error("{why}")]
    Refused { status: GuestAddress, code: u8, why: &'static str },
}

impl RequestError {
    fn ioerr(status: GuestAddress, why: &'static str) -> RequestError {
        RequestError::Refused { status, code: VIRTIO_BLK_S_IOERR as u8, why }
    }
}

/// What the disk looks like to requests.
#[derive(Debug, Clone, Copy)]
pub struct Disk {
    pub sectors: u64,
    pub read_only: bool,
}

/// Splits `bufs` into readable and writable byte counts.
fn sizes(bufs: &[Buffer]) -> (u64, u64) {
    bufs.iter().fold((0, 0), |(r, w), b| {
        if b.writable { (r, w + u64::from(b.len)) } else { (r + u64::from(b.len), w) }
    })
}

/// The guest address of byte `at` of the writable buffers.
fn writable_byte(bufs: &[Buffer], mut at: u64) -> Option<GuestAddress> {
    for b in bufs.iter().filter(|b| b.writable) {
        if at < u64::from(b.len) {
            return Some(b.addr.unchecked_add(at));
        }
        at -= u64::from(b.len);
    }
    None
}

fn in_disk(disk: &Disk, sector: u64, sectors: u64) -> bool {
    sector.checked_add(sectors).is_some_and(|end| end <= disk.sectors)
}

/// Parses the request in `bufs` (a chain already checked against memory by
/// [`crate::queue::gather`]).
pub fn parse(mem: &GuestMem, bufs: &[Buffer], disk: &Disk) -> Result<Request, RequestError> {
    let (readable, writable) = sizes(bufs);
    if writable == 0 {
        return Err(RequestError::NoStatus);
    }
    let status = writable_byte(bufs, writable - 1).ok_or(RequestError::NoStatus)?;
    if readable < HEADER_LEN {
        return Err(RequestError::ioerr(status, "the header is shorter than 16 bytes"));
    }
    let mut header = [0u8; HEADER_LEN as usize];
    iov::read_bytes(mem, bufs.iter().filter(|b| !b.writable), 0, &mut header)
        .map_err(|_| RequestError::ioerr(status, "unreadable header"))?;
    let ty = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let sector = u64::from_le_bytes(header[8..16].try_into().unwrap_or_default());
    let in_data = readable - HEADER_LEN;
    let out_data = writable - 1;
    let data_segments = bufs.len().saturating_sub(2);
    if data_segments > SEG_MAX as usize {
        return Err(RequestError::ioerr(status, "more data segments than seg_max"));
    }
    let req = |kind, data_len, data_skip| Request {
        kind,
        sector,
        data_len,
        data_skip,
        status,
        range: (0, 0),
    };
    match ty {
        VIRTIO_BLK_T_IN | VIRTIO_BLK_T_OUT => {
            let (kind, len, wrong_way) = if ty == VIRTIO_BLK_T_IN {
                (Kind::In, out_data, in_data)
            } else {
                (Kind::Out, in_data, out_data)
            };
            if wrong_way != 0 {
                return Err(RequestError::ioerr(status, "data buffers point the wrong way"));
            }
            if len > MAX_DATA {
                return Err(RequestError::ioerr(status, "the request is too large"));
            }
            if !len.is_multiple_of(SECTOR) {
                return Err(RequestError::ioerr(status, "the data is not whole sectors"));
            }
            if !in_disk(disk, sector, len / SECTOR) {
                return Err(RequestError::ioerr(status, "the request goes beyond the disk"));
            }
            if kind == Kind::Out && disk.read_only {
                return Err(RequestError::ioerr(status, "the disk is read-only"));
            }
            Ok(req(kind, len, if kind == Kind::Out { HEADER_LEN } else { 0 }))
        }
        VIRTIO_BLK_T_FLUSH => Ok(req(Kind::Flush, 0, 0)),
        VIRTIO_BLK_T_GET_ID => Ok(req(Kind::GetId, out_data.min(ID_LEN as u64), 0)),
        VIRTIO_BLK_T_DISCARD | VIRTIO_BLK_T_WRITE_ZEROES => {
            if disk.read_only {
                return Err(RequestError::ioerr(status, "the disk is read-only"));
            }
            if in_data == 0 || !in_data.is_multiple_of(SEGMENT_LEN) || out_data != 0 {
                return Err(RequestError::ioerr(status, "malformed range list"));
            }
            if in_data / SEGMENT_LEN > u64::from(MAX_RANGES) {
                return Err(RequestError::ioerr(status, "more ranges than announced"));
            }
            let mut seg = [0u8; SEGMENT_LEN as usize];
            iov::read_bytes(mem, bufs.iter().filter(|b| !b.writable), HEADER_LEN, &mut seg)
                .map_err(|_| RequestError::ioerr(status, "unreadable range"))?;
            let start = u64::from_le_bytes(seg[0..8].try_into().unwrap_or_default());
            let count = u64::from(u32::from_le_bytes(seg[8..12].try_into().unwrap_or_default()));
            let flags = u32::from_le_bytes(seg[12..16].try_into().unwrap_or_default());
            let kind = if ty == VIRTIO_BLK_T_DISCARD {
                if flags != 0 {
                    return Err(RequestError::Refused {
                        status,
                        code: VIRTIO_BLK_S_UNSUPP as u8,
                        why: "discard flags are reserved",
                    });
                }
                Kind::Discard
            } else {
                if flags & !WRITE_ZEROES_UNMAP != 0 {
                    return Err(RequestError::Refused {
                        status,
                        code: VIRTIO_BLK_S_UNSUPP as u8,
                        why: "unknown write-zeroes flags",
                    });
                }
                Kind::WriteZeroes { unmap: flags & WRITE_ZEROES_UNMAP != 0 }
            };
            if !in_disk(disk, start, count) {
                return Err(RequestError::ioerr(status, "the range goes beyond the disk"));
            }
            Ok(Request { range: (start, count), ..req(kind, 0, 0) })
        }
        _ => Err(RequestError::Refused {
            status,
            code: VIRTIO_BLK_S_UNSUPP as u8,
            why: "unsupported request type",
        }),
    }
}
