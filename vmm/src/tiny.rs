//! Tiny guest images for tests and benchmarks: a few instructions wrapped in an ELF with a PVH
//! entry note, so that this VMM and QEMU's microvm can boot the very same file.

/// Guest-physical address the code loads and starts at.
pub const LOAD: u64 = 0x10_0000;

/// `mov dx, 0x3f8`, then `mov al, c; out dx, al` per byte (the same bytes in 32- and 64-bit
/// mode).
pub fn print(text: &[u8]) -> Vec<u8> {
    let mut code = vec![0x66, 0xba, 0xf8, 0x03];
    for c in text {
        code.extend_from_slice(&[0xb0, *c, 0xee]);
    }
    code
}

/// Reset through the i8042 (`mov al, 0xfe; out 0x64, al`); where there is no i8042, a triple
/// fault (`ud2` with no IDT) ends the machine instead.
pub const RESET: [u8; 6] = [0xb0, 0xfe, 0xe6, 0x64, 0x0f, 0x0b];

/// An ELF64 executable holding `code` at [`LOAD`], entered there, with a Xen PVH entry note.
pub fn pvh_elf(code: &[u8]) -> Vec<u8> {
    const EHDR: usize = 64;
    const PHDR: usize = 56;
    // The note: namesz 4 ("Xen\0"), descsz 4, type 18 (XEN_ELFNOTE_PHYS32_ENTRY), the entry.
    let mut note = Vec::new();
    for v in [4u32, 4, 18] {
        note.extend_from_slice(&v.to_le_bytes());
    }
    note.extend_from_slice(b"Xen\0");
    note.extend_from_slice(&(LOAD as u32).to_le_bytes());
    let note_off = EHDR + 2 * PHDR;
    let code_off = (note_off + note.len()).next_multiple_of(16);
    let mut f = vec![0u8; code_off];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 2; // 64-bit
    f[5] = 1; // little endian
    f[6] = 1; // version
    let put16 =
        |f: &mut Vec<u8>, at: usize, v: u16| f[at..at + 2].copy_from_slice(&v.to_le_bytes());
    let put32 =
        |f: &mut Vec<u8>, at: usize, v: u32| f[at..at + 4].copy_from_slice(&v.to_le_bytes());
    let put64 =
        |f: &mut Vec<u8>, at: usize, v: u64| f[at..at + 8].copy_from_slice(&v.to_le_bytes());
    put16(&mut f, 16, 2); // ET_EXEC
    put16(&mut f, 18, 62); // x86-64
    put32(&mut f, 20, 1);
    put64(&mut f, 24, LOAD);
    put64(&mut f, 32, EHDR as u64); // program headers
    put16(&mut f, 52, EHDR as u16);
    put16(&mut f, 54, PHDR as u16);
    put16(&mut f, 56, 2);
    // PT_LOAD: the code, readable and executable.
    let p = EHDR;
    put32(&mut f, p, 1);
    put32(&mut f, p + 4, 5);
    put64(&mut f, p + 8, code_off as u64);
    put64(&mut f, p + 16, LOAD);
    put64(&mut f, p + 24, LOAD);
    put64(&mut f, p + 32, code.len() as u64);
    put64(&mut f, p + 40, code.len() as u64);
    put64(&mut f, p + 48, 0x1000);
    // PT_NOTE.
    let p = EHDR + PHDR;
    put32(&mut f, p, 4);
    put32(&mut f, p + 4, 4);
    put64(&mut f, p + 8, note_off as u64);
    put64(&mut f, p + 32, note.len() as u64);
    put64(&mut f, p + 40, note.len() as u64);
    put64(&mut f, p + 48, 4);
    f[note_off..note_off + note.len()].copy_from_slice(&note);
    f.extend_from_slice(code);
    f
}
