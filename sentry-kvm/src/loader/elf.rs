//! ELF64 headers: just what loading needs, parsed defensively (the file is untrusted).

use crate::abi::Errno;

pub const ET_EXEC: u16 = 2;
pub const ET_DYN: u16 = 3;
pub const PT_LOAD: u32 = 1;
pub const PT_INTERP: u32 = 3;
pub const PT_PHDR: u32 = 6;
pub const PT_GNU_STACK: u32 = 0x6474_e551;
pub const PF_X: u32 = 1;
pub const PF_W: u32 = 2;
pub const PF_R: u32 = 4;
const EM_X86_64: u16 = 62;
pub const PHDR_SIZE: usize = 56;

#[derive(Clone, Copy, Debug)]
pub struct Header {
    pub kind: u16,
    pub entry: u64,
    pub phoff: u64,
    pub phnum: u16,
}

#[derive(Clone, Copy, Debug)]
pub struct ProgramHeader {
    pub kind: u32,
    pub flags: u32,
    pub offset: u64,
    pub vaddr: u64,
    pub filesz: u64,
    pub memsz: u64,
}

fn u16_at(b: &[u8], off: usize) -> Result<u16, Errno> {
    b.get(off..off + 2).map(|s| u16::from_le_bytes([s[0], s[1]])).ok_or(Errno::ENOEXEC)
}
fn u32_at(b: &[u8], off: usize) -> Result<u32, Errno> {
    b.get(off..off + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or(Errno::ENOEXEC)
}
fn u64_at(b: &[u8], off: usize) -> Result<u64, Errno> {
    b.get(off..off + 8)
        .and_then(|s| s.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or(Errno::ENOEXEC)
}

pub fn is_elf(b: &[u8]) -> bool {
    b.starts_with(b"\x7fELF")
}

pub fn parse_header(b: &[u8]) -> Result<Header, Errno> {
    if !is_elf(b) || b.len() < 64 {
        return Err(Errno::ENOEXEC);
    }
    // 64-bit, little-endian, current version.
    if b[4] != 2 || b[5] != 1 || b[6] != 1 {
        return Err(Errno::ENOEXEC);
    }
    let kind = u16_at(b, 16)?;
    if (kind != ET_EXEC && kind != ET_DYN) || u16_at(b, 18)? != EM_X86_64 {
        return Err(Errno::ENOEXEC);
    }
    if u16_at(b, 54)? as usize != PHDR_SIZE {
        return Err(Errno::ENOEXEC);
    }
    let phnum = u16_at(b, 56)?;
    if phnum == 0 || phnum > 256 {
        return Err(Errno::ENOEXEC);
    }
    Ok(Header { kind, entry: u64_at(b, 24)?, phoff: u64_at(b, 32)?, phnum })
}

/// Parses `count` program headers from `b` (the bytes at phoff).
pub fn parse_phdrs(b: &[u8], count: usize) -> Result<Vec<ProgramHeader>, Errno> {
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let o = i * PHDR_SIZE;
        let p = ProgramHeader {
            kind: u32_at(b, o)?,
            flags: u32_at(b, o + 4)?,
            offset: u64_at(b, o + 8)?,
            vaddr: u64_at(b, o + 16)?,
            filesz: u64_at(b, o + 32)?,
            memsz: u64_at(b, o + 40)?,
        };
        if p.kind == PT_LOAD {
            if p.filesz > p.memsz
                || p.vaddr.checked_add(p.memsz).is_none()
                || p.offset.checked_add(p.filesz).is_none()
            {
                return Err(Errno::ENOEXEC);
            }
            // File offset and address must agree modulo the page size to be mappable.
            if p.offset % 4096 != p.vaddr % 4096 {
                return Err(Errno::ENOEXEC);
            }
        }
        out.push(p);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_garbage_and_truncation() {
        assert_eq!(parse_header(b"#!/bin/sh\n").unwrap_err(), Errno::ENOEXEC);
        assert_eq!(parse_header(b"\x7fELF").unwrap_err(), Errno::ENOEXEC);
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2;
        h[5] = 1;
        h[6] = 1;
        h[16] = 2;
        h[18] = 62;
        h[54] = 56;
        h[56] = 1;
        assert!(parse_header(&h).is_ok());
        h[18] = 3; // i386
        assert!(parse_header(&h).is_err());
        assert!(parse_phdrs(&[0u8; 10], 1).is_err());
    }
}
