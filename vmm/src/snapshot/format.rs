//! The snapshot file: a fixed header (magic, format version, payload length, CRC-32 of the
//! payload) and then the [`MachineState`] in bincode: registers and controller state are
//! byte blobs copied as they are, where JSON spelt each byte as a number (~10,000 of them,
//! parsed on every restore). A file from another format version, cut short, or with a single
//! flipped bit is refused before anything is built from it; a payload that passes the
//! checksum yet does not decode (or leaves bytes over) is refused as corrupt.

use std::io::{Read, Write};
use std::path::Path;

use bincode::Options;

use super::SnapshotError;
use super::state::MachineState;

const MAGIC: [u8; 8] = *b"RFSNAP\0\0";
/// The state format this VMM writes and reads; bumped with any change to [`MachineState`].
/// (1: JSON.)
pub const VERSION: u32 = 2;
const HEADER: usize = 8 + 4 + 4 + 8 + 4 + 4;
/// A state larger than this is not one this VMM wrote (a few vCPUs' registers, some KiB).
const MAX_PAYLOAD: u64 = 64 << 20;

/// Writes `state` to `path` (through a temporary file, so a reader never sees half of it).
pub fn write(path: &Path, state: &MachineState) -> Result<(), SnapshotError> {
    let payload = codec().serialize(state).map_err(|e| SnapshotError::Encode(e.to_string()))?;
    let header = header(&payload);
    let io = |e: std::io::Error| SnapshotError::Io(format!("writing {}: {e}", path.display()));
    let mut staging = path.as_os_str().to_owned();
    staging.push(".partial");
    let mut f = std::fs::File::create(&staging).map_err(io)?;
    f.write_all(&header).map_err(io)?;
    f.write_all(&payload).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&staging, path).map_err(io)?;
    Ok(())
}

/// The header of this version's file around `payload`: magic, version, a reserved word, the
/// payload's length and CRC-32, another reserved word.
fn header(payload: &[u8]) -> Vec<u8> {
    let mut header = Vec::with_capacity(HEADER);
    header.extend_from_slice(&MAGIC);
    header.extend_from_slice(&VERSION.to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    header.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    header.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    header
}

/// Reads and checks the snapshot at `path`.
pub fn read(path: &Path) -> Result<MachineState, SnapshotError> {
    let mut f = std::fs::File::open(path)
        .map_err(|e| SnapshotError::Io(format!("opening {}: {e}", path.display())))?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)
        .map_err(|e| SnapshotError::Io(format!("reading {}: {e}", path.display())))?;
    decode(&bytes)
}

/// Checks and decodes a snapshot file's bytes.
pub fn decode(bytes: &[u8]) -> Result<MachineState, SnapshotError> {
    if bytes.len() < HEADER {
        return Err(SnapshotError::Truncated {
            expected: HEADER as u64,
            found: bytes.len() as u64,
        });
    }
    if bytes[..8] != MAGIC {
        return Err(SnapshotError::NotASnapshot);
    }
    let u32_at =
        |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let version = u32_at(8);
    if version != VERSION {
        return Err(SnapshotError::Version { found: version, supported: VERSION });
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&bytes[16..24]);
    let len = u64::from_le_bytes(len);
    if len > MAX_PAYLOAD {
        return Err(SnapshotError::Corrupt(format!("a state of {len} bytes")));
    }
    let found = (bytes.len() - HEADER) as u64;
    if found != len {
        return Err(SnapshotError::Truncated {
            expected: HEADER as u64 + len,
            found: bytes.len() as u64,
        });
    }
    let payload = &bytes[HEADER..];
    if crc32fast::hash(payload) != u32_at(24) {
        return Err(SnapshotError::Corrupt("its checksum does not match".into()));
    }
    codec().deserialize(payload).map_err(|e| SnapshotError::Corrupt(e.to_string()))
}

/// Fixed-width integers, no trailing bytes, and no length inside that claims more than the
/// payload could hold.
fn codec() -> impl Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .reject_trailing_bytes()
        .with_limit(MAX_PAYLOAD)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file framed as this version writes it, around `payload`.
    fn framed(payload: &[u8]) -> Vec<u8> {
        [header(payload).as_slice(), payload].concat()
    }

    #[test]
    fn a_payload_that_passes_the_checksum_but_does_not_decode_is_corrupt() {
        // The first field is a JSON string: a length of 2^62 bytes, then nothing.
        let huge = framed(&(1u64 << 62).to_le_bytes());
        let json = framed(br#"{"resources": {}}"#);
        for bytes in [huge, json, framed(&[])] {
            match decode(&bytes) {
                Err(SnapshotError::Corrupt(_)) => {}
                Err(e) => panic!("{e}"),
                Ok(_) => panic!("decoded"),
            }
        }
    }
}
