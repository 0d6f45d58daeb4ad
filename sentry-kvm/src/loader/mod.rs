//! Loading programs into a fresh address space: ELF segments, the interpreter (PT_INTERP),
//! and the initial stack with argv, envp and the auxiliary vector.

pub mod elf;

use std::sync::Arc;

use crate::abi::Errno;
use crate::kernel::task::Task;
use crate::mm::address_space::{MapRequest, MemoryManager};
use crate::mm::vma::{Prot, VmaName};
use crate::mm::{PAGE_SIZE, page_up};
use crate::vfs::file::File;
use elf::{PF_R, PF_W, PF_X, PT_INTERP, PT_LOAD, PT_PHDR, ProgramHeader};

/// Where position-independent executables are loaded (Linux's ELF_ET_DYN_BASE).
pub const PIE_BASE: u64 = 0x5555_5555_4000;
/// Top of the initial stack.
pub const STACK_TOP: u64 = crate::mm::address_space::TASK_SIZE;
/// Initial size of the stack area; it grows down on faults.
const STACK_INITIAL: u64 = 128 << 10;
/// Bound on argv + envp strings (Linux allows a quarter of the stack rlimit).
pub const ARG_MAX: usize = 2 << 20;

pub const AT_NULL: u64 = 0;
pub const AT_PHDR: u64 = 3;
pub const AT_PHENT: u64 = 4;
pub const AT_PHNUM: u64 = 5;
pub const AT_PAGESZ: u64 = 6;
pub const AT_BASE: u64 = 7;
pub const AT_FLAGS: u64 = 8;
pub const AT_ENTRY: u64 = 9;
pub const AT_UID: u64 = 11;
pub const AT_EUID: u64 = 12;
pub const AT_GID: u64 = 13;
pub const AT_EGID: u64 = 14;
pub const AT_PLATFORM: u64 = 15;
pub const AT_HWCAP: u64 = 16;
pub const AT_CLKTCK: u64 = 17;
pub const AT_SECURE: u64 = 23;
pub const AT_RANDOM: u64 = 25;
pub const AT_HWCAP2: u64 = 26;
pub const AT_EXECFN: u64 = 31;
pub const AT_SYSINFO_EHDR: u64 = 33;
pub const AT_MINSIGSTKSZ: u64 = 51;

/// One ELF file mapped into an address space.
struct Mapped {
    bias: u64,
    entry: u64,
    phdr: u64,
    phnum: u64,
    end: u64,
    interp: Option<Vec<u8>>,
}

fn read_at(task: &Task, file: &File, offset: u64, len: usize) -> Result<Vec<u8>, Errno> {
    let mut buf = vec![0u8; len];
    let mut done = 0;
    while done < len {
        let n = file.ops.read_at(task, &mut buf[done..], offset + done as u64)?;
        if n == 0 {
            break;
        }
        file.report(crate::vfs::notify::event::IN_ACCESS);
        done += n;
    }
    buf.truncate(done);
    Ok(buf)
}

fn prot_of(p: &ProgramHeader) -> Prot {
    Prot {
        read: p.flags & (PF_R | PF_W | PF_X) != 0,
        write: p.flags & PF_W != 0,
        exec: p.flags & PF_X != 0,
    }
}

fn map_elf(
    task: &Task,
    mm: &MemoryManager,
    file: &Arc<File>,
    head: &[u8],
    main: bool,
) -> Result<Mapped, Errno> {
    let h = elf::parse_header(head)?;
    let ph_len = h.phnum as usize * elf::PHDR_SIZE;
    let ph_bytes = read_at(task, file, h.phoff, ph_len)?;
    if ph_bytes.len() != ph_len {
        return Err(Errno::ENOEXEC);
    }
    let phdrs = elf::parse_phdrs(&ph_bytes, h.phnum as usize)?;
    let loads: Vec<&ProgramHeader> = phdrs.iter().filter(|p| p.kind == PT_LOAD).collect();
    let first = loads.first().ok_or(Errno::ENOEXEC)?;
    let lo = first.vaddr & !(PAGE_SIZE - 1);
    let hi = loads.iter().map(|p| p.vaddr + p.memsz).max().ok_or(Errno::ENOEXEC)?;
    let hi = page_up(hi).ok_or(Errno::ENOEXEC)?;

    let mut interp = None;
    for p in &phdrs {
        if p.kind == PT_INTERP {
            if !main || p.filesz == 0 || p.filesz > 4096 {
                return Err(Errno::ENOEXEC);
            }
            let mut s = read_at(task, file, p.offset, p.filesz as usize)?;
            if s.last() == Some(&0) {
                s.pop();
            }
            interp = Some(s);
        }
    }

    let bias = if h.kind == elf::ET_EXEC {
        0
    } else if main {
        PIE_BASE - lo
    } else {
        // Reserve the whole span, then place the segments inside it.
        let mut req = MapRequest::anon(hi - lo, Prot::NONE);
        req.addr = 0;
        mm.mmap(req)? - lo
    };

    let mappable = file.ops.mappable()?;
    let file_size = file.ops.stat()?.size as u64;
    for p in &loads {
        let start = bias + (p.vaddr & !(PAGE_SIZE - 1));
        let page_off = p.vaddr % PAGE_SIZE;
        let prot = prot_of(p);
        let file_end = bias + p.vaddr + p.filesz;
        if p.filesz > 0 {
            if p.offset + p.filesz > file_size {
                return Err(Errno::ENOEXEC);
            }
            let len = page_up(page_off + p.filesz).ok_or(Errno::ENOEXEC)?;
            let mut req = MapRequest::anon(len, prot);
            req.addr = start;
            req.fixed = true;
            req.backing = Some(mappable.clone());
            req.pgoff = (p.offset - page_off) / PAGE_SIZE;
            req.name = VmaName::File(String::from_utf8_lossy(&file.path).into_owned());
            mm.mmap(req)?;
            // The rest of the last file page belongs to .bss: it must read as zeroes.
            let tail = page_up(file_end).ok_or(Errno::ENOEXEC)? - file_end;
            if p.memsz > p.filesz && tail > 0 {
                if !prot.write {
                    mm.mprotect(file_end & !(PAGE_SIZE - 1), PAGE_SIZE, Prot::RW)?;
                }
                mm.zero_out(file_end, tail as usize)?;
                if !prot.write {
                    mm.mprotect(file_end & !(PAGE_SIZE - 1), PAGE_SIZE, prot)?;
                }
            }
        }
        let anon_start = page_up(file_end).ok_or(Errno::ENOEXEC)?;
        let anon_end = page_up(bias + p.vaddr + p.memsz).ok_or(Errno::ENOEXEC)?;
        if anon_end > anon_start {
            let mut req = MapRequest::anon(anon_end - anon_start, prot);
            req.addr = anon_start;
            req.fixed = true;
            mm.mmap(req)?;
        }
    }

    let phdr = match phdrs.iter().find(|p| p.kind == PT_PHDR) {
        Some(p) => bias + p.vaddr,
        None => {
            // The headers are inside the first segment that maps file offset phoff.
            let seg = loads.iter().find(|p| p.offset <= h.phoff && h.phoff < p.offset + p.filesz);
            seg.map(|p| bias + p.vaddr + (h.phoff - p.offset)).unwrap_or(0)
        }
    };
    Ok(Mapped {
        bias,
        entry: bias + h.entry,
        phdr,
        phnum: u64::from(h.phnum),
        end: bias + hi,
        interp,
    })
}

/// What exec needs to start the new image.
pub struct Loaded {
    pub entry: u64,
    pub sp: u64,
}

/// The pieces of a program to load: the opened executable (and interpreter, opened by the
/// caller once it knows the path) plus its arguments.
pub struct Program<'a> {
    pub file: &'a Arc<File>,
    pub head: &'a [u8],
    pub argv: &'a [Vec<u8>],
    pub envp: &'a [Vec<u8>],
    pub execfn: &'a [u8],
}

/// Opens the interpreter named by PT_INTERP.
pub type OpenInterp<'a> = dyn Fn(&[u8]) -> Result<Arc<File>, Errno> + 'a;

/// Loads `prog` into `mm`; `open_interp` opens the PT_INTERP path if there is one.
pub fn load(
    task: &Task,
    mm: &MemoryManager,
    prog: &Program,
    open_interp: &OpenInterp,
) -> Result<Loaded, Errno> {
    let main = map_elf(task, mm, prog.file, prog.head, true)?;
    let (entry, base) = match &main.interp {
        Some(path) => {
            let f = open_interp(path)?;
            let head = read_at(task, &f, 0, 1024)?;
            let interp = map_elf(task, mm, &f, &head, false)?;
            (interp.entry, interp.bias)
        }
        None => (main.entry, 0),
    };
    mm.set_brk_start(page_up(main.end).ok_or(Errno::ENOMEM)?);

    let mut stack = MapRequest::anon(STACK_INITIAL, Prot::RW);
    stack.addr = STACK_TOP - STACK_INITIAL;
    stack.fixed = true;
    stack.growsdown = true;
    stack.name = VmaName::Stack;
    mm.mmap(stack)?;

    let creds = task.creds();
    // Without a vDSO, programs make the syscalls themselves: slower, not wrong.
    let vdso = match &task.kernel.vdso {
        Some(v) => Some(v.map(mm)?),
        None => None,
    };
    let mut auxv = vec![
        (AT_PHDR, main.phdr),
        (AT_PHENT, elf::PHDR_SIZE as u64),
        (AT_PHNUM, main.phnum),
        (AT_PAGESZ, PAGE_SIZE),
        (AT_BASE, base),
        (AT_FLAGS, 0),
        (AT_ENTRY, main.entry),
        (AT_UID, u64::from(creds.uid)),
        (AT_EUID, u64::from(creds.euid)),
        (AT_GID, u64::from(creds.gid)),
        (AT_EGID, u64::from(creds.egid)),
        (AT_SECURE, 0),
        (AT_CLKTCK, 100),
        (AT_HWCAP, hwcap()),
        (AT_HWCAP2, 0),
        (AT_MINSIGSTKSZ, 2048 + crate::kernel::signal::frame::XSAVE_BYTES as u64 + 512),
    ];
    if let Some(base) = vdso {
        auxv.push((AT_SYSINFO_EHDR, base));
    }
    let sp = build_stack(mm, prog, &mut auxv)?;
    mm.lock().auxv = auxv;
    Ok(Loaded { entry, sp })
}

fn hwcap() -> u64 {
    let r = std::arch::x86_64::__cpuid(1);
    u64::from(r.edx)
}

fn build_stack(
    mm: &MemoryManager,
    prog: &Program,
    auxv: &mut Vec<(u64, u64)>,
) -> Result<u64, Errno> {
    let strings: usize = prog.argv.iter().chain(prog.envp).map(|s| s.len() + 1).sum();
    if strings + prog.execfn.len() > ARG_MAX {
        return Err(Errno::E2BIG);
    }
    let mut p = STACK_TOP - 8;
    let put_str = |p: &mut u64, s: &[u8]| -> Result<u64, Errno> {
        *p -= s.len() as u64 + 1;
        let mut b = s.to_vec();
        b.push(0);
        mm.copy_out(*p, &b)?;
        Ok(*p)
    };
    let execfn = put_str(&mut p, prog.execfn)?;
    let env_end = p;
    let mut envs = Vec::with_capacity(prog.envp.len());
    for e in prog.envp.iter().rev() {
        envs.push(put_str(&mut p, e)?);
    }
    envs.reverse();
    let env_start = p;
    let arg_end = p;
    let mut args = Vec::with_capacity(prog.argv.len());
    for a in prog.argv.iter().rev() {
        args.push(put_str(&mut p, a)?);
    }
    args.reverse();
    let arg_start = p;
    let platform = put_str(&mut p, b"x86_64")?;
    p -= 16;
    let mut random = [0u8; 16];
    crate::random::fill(&mut random);
    mm.copy_out(p, &random)?;
    let random_addr = p;
    p &= !15;

    auxv.push((AT_RANDOM, random_addr));
    auxv.push((AT_PLATFORM, platform));
    auxv.push((AT_EXECFN, execfn));
    auxv.push((AT_NULL, 0));
    let words = 1 + args.len() + 1 + envs.len() + 1 + 2 * auxv.len();
    p -= (words * 8) as u64;
    p &= !15;
    let mut v: Vec<u64> = Vec::with_capacity(words);
    v.push(args.len() as u64);
    v.extend(&args);
    v.push(0);
    v.extend(&envs);
    v.push(0);
    for (k, val) in auxv.iter() {
        v.push(*k);
        v.push(*val);
    }
    let bytes: Vec<u8> = v.iter().flat_map(|w| w.to_le_bytes()).collect();
    mm.copy_out(p, &bytes)?;
    let mut st = mm.lock();
    st.arg_range = (arg_start, arg_end);
    st.env_range = (env_start, env_end);
    Ok(p)
}
