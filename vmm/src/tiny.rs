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

/// 32-bit instructions for tiny guests that drive devices.
#[derive(Default)]
struct Asm(Vec<u8>);

impl Asm {
    /// `mov dword [addr], v`
    fn store32(&mut self, addr: u32, v: u32) -> &mut Self {
        self.0.extend_from_slice(&[0xc7, 0x05]);
        self.0.extend_from_slice(&addr.to_le_bytes());
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// `mov dword [ebx+off], v` (ebx: the device's register window; a 32-bit displacement,
    /// as 8-bit ones are signed).
    fn reg(&mut self, off: u32, v: u32) -> &mut Self {
        self.0.extend_from_slice(&[0xc7, 0x83]);
        self.0.extend_from_slice(&off.to_le_bytes());
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// A descriptor at `table[i]`.
    fn desc(
        &mut self,
        table: u32,
        i: u32,
        addr: u32,
        len: u32,
        flags: u16,
        next: u16,
    ) -> &mut Self {
        let at = table + 16 * i;
        self.store32(at, addr).store32(at + 4, 0).store32(at + 8, len);
        self.store32(at + 12, u32::from(flags) | u32::from(next) << 16)
    }
    /// Spin until the 16-bit value at `addr` equals `v`.
    fn wait16(&mut self, addr: u32, v: u8) -> &mut Self {
        self.0.extend_from_slice(&[0x0f, 0xb7, 0x05]); // movzx eax, word [addr]
        self.0.extend_from_slice(&addr.to_le_bytes());
        self.0.extend_from_slice(&[0x83, 0xf8, v, 0x75, 0xf4]); // cmp eax, v; jne back
        self
    }
    /// Send `len` bytes at `addr` to the serial port (`rep outsb`).
    fn print_mem(&mut self, addr: u32, len: u32) -> &mut Self {
        self.0.push(0xbe);
        self.0.extend_from_slice(&addr.to_le_bytes());
        self.0.push(0xb9);
        self.0.extend_from_slice(&len.to_le_bytes());
        self.0.extend_from_slice(&[0x66, 0xba, 0xf8, 0x03, 0xf3, 0x6e]);
        self
    }
}

/// A guest that drives the first virtio-mmio device as virtio-blk: reads sector 0 and prints
/// its first 16 bytes and the status byte, writes what it read to sector 1 and prints that
/// status byte, then resets.
pub fn virtio_blk_copy() -> Vec<u8> {
    const TABLE: u32 = 0x20_0000;
    const AVAIL: u32 = 0x20_0100;
    const USED: u32 = 0x20_0200;
    const HEADER: u32 = 0x20_1000;
    const DATA: u32 = 0x20_2000;
    const STATUS: u32 = 0x20_3000;
    let (next, write) = (1u16, 2u16);
    let mut a = Asm::default();
    a.0.extend_from_slice(&[0xbb, 0, 0, 0, 0xd0]); // mov ebx, 0xd0000000
    // Negotiate VERSION_1 only, one queue of 8.
    a.reg(0x70, 3).reg(0x24, 1).reg(0x20, 1).reg(0x24, 0).reg(0x20, 0).reg(0x70, 0xb);
    a.reg(0x30, 0).reg(0x38, 8).reg(0x80, TABLE).reg(0x84, 0).reg(0x90, AVAIL).reg(0x94, 0);
    a.reg(0xa0, USED).reg(0xa4, 0).reg(0x44, 1).reg(0x70, 0xf);
    // Read sector 0: header (IN), 512 bytes of data, status.
    a.store32(HEADER, 0).store32(HEADER + 8, 0).store32(STATUS, 0xff);
    a.desc(TABLE, 0, HEADER, 16, next, 1).desc(TABLE, 1, DATA, 512, next | write, 2);
    a.desc(TABLE, 2, STATUS, 1, write, 0);
    a.store32(AVAIL + 4, 0).store32(AVAIL, 1 << 16).reg(0x50, 0).wait16(USED + 2, 1);
    a.print_mem(DATA, 16).print_mem(STATUS, 1);
    // Write what was read to sector 1 (OUT): the data buffer is now device-readable.
    a.store32(HEADER, 1).store32(HEADER + 8, 1).store32(STATUS, 0xff);
    a.desc(TABLE, 1, DATA, 512, next, 2);
    a.store32(AVAIL + 4, 0).store32(AVAIL, 2 << 16).reg(0x50, 0).wait16(USED + 2, 2);
    a.print_mem(STATUS, 1);
    a.0.extend_from_slice(&RESET);
    a.0
}
