//! Guest memory in a snapshot's memory file: RAM ranges back to back, as a memfd lays them
//! out. Pages that are all zero are left as holes (a booted guest has touched a fraction of
//! its memory), so the file is sparse. A restore maps the file privately: clones of one
//! snapshot share its page cache and copy only the pages they write.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use vm_memory::mmap::MmapRegionBuilder;
use vm_memory::{Bytes, FileOffset, GuestAddress, GuestMemoryMmap, GuestRegionMmap};

use super::SnapshotError;
use crate::layout;
use crate::memory::{Backing, GuestMem};

const PAGE: usize = 4096;
const CHUNK: usize = 2 << 20;

/// Writes all of `mem` (`size` bytes of RAM) to `path`; returns the bytes written (the rest
/// are holes).
pub fn write(mem: &GuestMem, size: u64, path: &Path) -> Result<u64, SnapshotError> {
    let io = |e: std::io::Error| SnapshotError::Io(format!("writing {}: {e}", path.display()));
    let file = create_sized(path, size).map_err(io)?;
    let zero = [0u8; PAGE];
    let mut buf = vec![0u8; CHUNK];
    let mut written = 0;
    let mut file_offset = 0u64;
    for (start, len) in layout::ram_ranges(size) {
        for (from, to) in touched(mem, start, len) {
            // Whole pages (RAM ranges are page multiples).
            let (mut done, to) =
                (from / PAGE as u64 * PAGE as u64, to.next_multiple_of(PAGE as u64).min(len));
            while done < to {
                let n = (to - done).min(CHUNK as u64) as usize;
                let chunk = &mut buf[..n];
                mem.read_slice(chunk, GuestAddress(start + done))
                    .map_err(|e| SnapshotError::Io(format!("reading guest memory: {e}")))?;
                // Runs of pages with data, written in one call each.
                let mut page = 0;
                while page < n {
                    if chunk[page..page + PAGE] == zero {
                        page += PAGE;
                        continue;
                    }
                    let run = page;
                    while page < n && chunk[page..page + PAGE] != zero {
                        page += PAGE;
                    }
                    file.write_all_at(&chunk[run..page], file_offset + done + run as u64)
                        .map_err(io)?;
                    written += (page - run) as u64;
                }
                done += n as u64;
            }
        }
        file_offset += len;
    }
    file.sync_all().map_err(io)?;
    Ok(written)
}

/// A new (or emptied) file of `size` bytes, all of it a hole.
fn create_sized(path: &Path, size: u64) -> std::io::Result<File> {
    let file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(path)?;
    file.set_len(size)?;
    Ok(file)
}

/// Writes the pages of `pages` (guest address >> 12) to a sparse file at `path` of the
/// memory's size, each at its place and as it is (a page zeroed since is written as zeros):
/// the memory of a Diff snapshot, to lay over its base with [`apply_diff`]. Returns the bytes
/// written.
pub fn write_pages(
    mem: &GuestMem,
    size: u64,
    path: &Path,
    pages: &std::collections::BTreeSet<u64>,
) -> Result<u64, SnapshotError> {
    let io = |e: std::io::Error| SnapshotError::Io(format!("writing {}: {e}", path.display()));
    let file = create_sized(path, size).map_err(io)?;
    let ranges = layout::ram_ranges(size);
    let mut page = [0u8; PAGE];
    let mut written = 0;
    for &p in pages {
        let gpa = p << 12;
        let Some(offset) = file_offset(&ranges, gpa) else { continue };
        mem.read_slice(&mut page, GuestAddress(gpa))
            .map_err(|e| SnapshotError::Io(format!("reading guest memory: {e}")))?;
        file.write_all_at(&page, offset).map_err(io)?;
        written += PAGE as u64;
    }
    file.sync_all().map_err(io)?;
    Ok(written)
}

/// Where guest address `gpa` lies in a memory file, if it is RAM.
fn file_offset(ranges: &[(u64, u64)], gpa: u64) -> Option<u64> {
    let mut base = 0;
    for &(start, len) in ranges {
        if gpa >= start && gpa < start + len {
            return Some(base + gpa - start);
        }
        base += len;
    }
    None
}

/// Lays a Diff snapshot's memory file over its base's (the Full snapshot's it followed, or
/// the file the machine was restored from): the base becomes the memory at the Diff.
pub fn apply_diff(diff: &Path, base: &Path) -> Result<u64, SnapshotError> {
    let io = |e: std::io::Error| {
        SnapshotError::Io(format!("{} onto {}: {e}", diff.display(), base.display()))
    };
    let d = File::open(diff).map_err(io)?;
    let b = std::fs::OpenOptions::new().write(true).open(base).map_err(io)?;
    let (dl, bl) = (d.metadata().map_err(io)?.len(), b.metadata().map_err(io)?.len());
    if dl != bl {
        return Err(SnapshotError::MemoryFileSize { path: diff.into(), found: dl, expected: bl });
    }
    let mut copied = 0;
    for_each_data_chunk(&d, dl, io, |at, bytes| {
        copied += bytes.len() as u64;
        b.write_all_at(bytes, at).map_err(io)
    })?;
    b.sync_all().map_err(io)?;
    Ok(copied)
}

/// Calls `f` with each chunk (up to [`CHUNK`] bytes) of the data in the first `len` bytes of
/// `file`, and its offset, skipping holes; `io` says what a read error was about.
fn for_each_data_chunk(
    file: &File,
    len: u64,
    io: impl Fn(std::io::Error) -> SnapshotError,
    mut f: impl FnMut(u64, &[u8]) -> Result<(), SnapshotError>,
) -> Result<(), SnapshotError> {
    let mut buf = vec![0u8; CHUNK];
    let mut pos = 0;
    while pos < len {
        let Some((data, hole)) = extent(file, pos).map_err(&io)? else { break };
        let mut at = data;
        while at < hole.min(len) {
            let n = (hole.min(len) - at).min(CHUNK as u64) as usize;
            file.read_exact_at(&mut buf[..n], at).map_err(&io)?;
            f(at, &buf[..n])?;
            at += n as u64;
        }
        pos = hole;
    }
    Ok(())
}

/// The parts of the RAM range at `start` (`len` bytes) that may hold data, as offsets into
/// the range: where guest memory is a shared file (a memfd), its data extents, so that
/// memory the guest never touched is not even read; all of it otherwise (anonymous memory,
/// or a private mapping whose written pages are not the file's).
fn touched(mem: &GuestMem, start: u64, len: u64) -> Vec<(u64, u64)> {
    use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};
    let all = vec![(0, len)];
    let Some(region) = mem.find_region(GuestAddress(start)) else { return all };
    let Some(fo) = region.file_offset() else { return all };
    if region.flags() & libc::MAP_SHARED == 0 {
        return all;
    }
    let base = fo.start();
    let mut out = Vec::new();
    let mut pos = base;
    while pos < base + len {
        match extent(fo.file(), pos) {
            Ok(Some((data, hole))) if data < base + len => {
                out.push((data - base, hole.min(base + len) - base));
                pos = hole;
            }
            Ok(_) => break,
            Err(_) => return all,
        }
    }
    out
}

fn open_checked(path: &Path, size: u64) -> Result<File, SnapshotError> {
    let file = File::open(path)
        .map_err(|e| SnapshotError::Io(format!("memory file {}: {e}", path.display())))?;
    let len = file
        .metadata()
        .map_err(|e| SnapshotError::Io(format!("memory file {}: {e}", path.display())))?
        .len();
    if len != size {
        return Err(SnapshotError::MemoryFileSize {
            path: path.into(),
            found: len,
            expected: size,
        });
    }
    Ok(file)
}

/// Guest memory mapped privately from the memory file at `path` (copy-on-write).
pub fn map_private(path: &Path, size: u64) -> Result<GuestMem, SnapshotError> {
    let file = open_checked(path, size)?;
    let err = |e: &dyn std::fmt::Display| SnapshotError::Io(format!("mapping guest memory: {e}"));
    let mut regions = Vec::new();
    let mut offset = 0;
    for (start, len) in layout::ram_ranges(size) {
        let fo = FileOffset::new(file.try_clone().map_err(|e| err(&e))?, offset);
        let region = MmapRegionBuilder::new(len as usize)
            .with_file_offset(fo)
            .with_mmap_prot(libc::PROT_READ | libc::PROT_WRITE)
            .with_mmap_flags(libc::MAP_PRIVATE | libc::MAP_NORESERVE)
            .build()
            .map_err(|e| err(&e))?;
        let region = GuestRegionMmap::new(region, GuestAddress(start))
            .ok_or_else(|| SnapshotError::Io("a memory region overflows".into()))?;
        regions.push(region);
        offset += len;
    }
    GuestMemoryMmap::from_regions(regions).map_err(|e| err(&e))
}

/// Guest memory in a fresh memfd holding the memory file's contents: for machines whose
/// vhost-user daemons must map guest memory shared (a private mapping's copies would be
/// invisible to them). Only the file's data extents are read.
pub fn copy_shared(path: &Path, size: u64) -> Result<GuestMem, SnapshotError> {
    let file = open_checked(path, size)?;
    let mem = crate::memory::create_with(size, Backing::Memfd)
        .map_err(|e| SnapshotError::Io(e.to_string()))?;
    let io = |e: std::io::Error| SnapshotError::Io(format!("reading {}: {e}", path.display()));
    let ranges = layout::ram_ranges(size);
    for_each_data_chunk(&file, size, io, |at, bytes| {
        write_at_file_offset(&mem, &ranges, at, bytes)
    })?;
    Ok(mem)
}

/// The next data extent at or after `pos`: (start, end), or `None` past the last.
fn extent(file: &File, pos: u64) -> std::io::Result<Option<(u64, u64)>> {
    use std::os::fd::AsRawFd;
    let seek = |off: u64, whence| {
        // SAFETY: lseek on a descriptor this function borrows; no memory is involved.
        let r = unsafe { libc::lseek(file.as_raw_fd(), off as libc::off_t, whence) };
        if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(r as u64) }
    };
    let data = match seek(pos, libc::SEEK_DATA) {
        Ok(d) => d,
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(Some((data, seek(data, libc::SEEK_HOLE)?)))
}

/// Writes `bytes` found at `file_offset` of a memory file to the guest address it stands for.
fn write_at_file_offset(
    mem: &GuestMem,
    ranges: &[(u64, u64)],
    mut file_offset: u64,
    mut bytes: &[u8],
) -> Result<(), SnapshotError> {
    let mut base = 0u64;
    for &(start, len) in ranges {
        while !bytes.is_empty() && file_offset >= base && file_offset < base + len {
            let n = ((base + len - file_offset) as usize).min(bytes.len());
            mem.write_slice(&bytes[..n], GuestAddress(start + file_offset - base))
                .map_err(|e| SnapshotError::Io(format!("filling guest memory: {e}")))?;
            bytes = &bytes[n..];
            file_offset += n as u64;
        }
        base += len;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_round_trips_sparse_privately_and_shared() {
        let size = 8 << 20;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mem");
        // A memfd's holes are skipped unread; anonymous memory is scanned for zero pages.
        for backing in [Backing::Memfd, Backing::Anonymous] {
            let mem = crate::memory::create_with(size, backing).unwrap();
            mem.write_obj(0x1122_3344_u32, GuestAddress(0x1000)).unwrap();
            mem.write_obj(0x5566_7788_u32, GuestAddress(size - 4)).unwrap();
            assert_eq!(write(&mem, size, &path).unwrap(), 2 * PAGE as u64, "{backing:?}");
        }
        for restored in [map_private(&path, size).unwrap(), copy_shared(&path, size).unwrap()] {
            assert_eq!(restored.read_obj::<u32>(GuestAddress(0x1000)).unwrap(), 0x1122_3344);
            assert_eq!(restored.read_obj::<u32>(GuestAddress(size - 4)).unwrap(), 0x5566_7788);
            assert_eq!(restored.read_obj::<u32>(GuestAddress(0x2000)).unwrap(), 0);
            restored.write_obj(7u32, GuestAddress(0x1000)).unwrap();
        }
        // A private mapping's writes never reach the file.
        assert_eq!(
            map_private(&path, size).unwrap().read_obj::<u32>(GuestAddress(0x1000)).unwrap(),
            0x1122_3344
        );
        let e = map_private(&path, size * 2).unwrap_err();
        assert!(e.to_string().contains("bytes"), "{e}");
    }
}
