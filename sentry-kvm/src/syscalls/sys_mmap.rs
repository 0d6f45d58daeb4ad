//! Memory: mmap, munmap, mprotect, mremap, brk, madvise and friends.

use super::Call;
use crate::abi::Errno;
use crate::abi::errno::SysResult;
use crate::mm::PAGE_SIZE;
use crate::mm::address_space::*;
use crate::mm::mappable::MemObject;
use crate::mm::vma::{Prot, VmaName};
use std::sync::Arc;

pub fn mmap(c: &mut Call) -> SysResult {
    let (addr, len, prot, flags, fd, off) =
        (c.args[0], c.args[1], c.arg_u32(2), c.arg_u32(3), c.arg_i32(4), c.args[5]);
    if len == 0 || off % PAGE_SIZE != 0 {
        return Err(Errno::EINVAL);
    }
    if prot & !7 != 0 {
        return Err(Errno::EINVAL);
    }
    let kind = flags & MAP_TYPE;
    let shared = match kind {
        MAP_SHARED | MAP_SHARED_VALIDATE => true,
        MAP_PRIVATE => false,
        _ => return Err(Errno::EINVAL),
    };
    if flags & MAP_HUGETLB != 0 {
        return Err(Errno::EINVAL);
    }
    let mut req = MapRequest::anon(len, Prot::from_bits(prot));
    req.addr = addr;
    req.fixed = flags & MAP_FIXED != 0;
    req.noreplace = flags & MAP_FIXED_NOREPLACE != 0;
    req.shared = shared;
    req.growsdown = flags & MAP_GROWSDOWN != 0;
    req.populate = flags & MAP_POPULATE != 0;
    if req.fixed && addr % PAGE_SIZE != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & MAP_ANONYMOUS != 0 {
        if shared {
            let size = crate::mm::page_up(len).ok_or(Errno::ENOMEM)?;
            req.backing = Some(Arc::new(MemObject::new(c.task.kernel.phys.clone(), size)));
        }
    } else {
        let file = c.file(fd)?;
        if !file.readable() {
            return Err(Errno::EACCES);
        }
        if shared && prot & crate::mm::vma::PROT_WRITE != 0 && !file.writable() {
            return Err(Errno::EACCES);
        }
        req.may_write = !shared || file.writable();
        req.backing = Some(file.ops.mappable()?);
        req.pgoff = off / PAGE_SIZE;
        req.name = VmaName::File(String::from_utf8_lossy(&file.path).into_owned());
    }
    c.mm().mmap(req)
}

pub fn munmap(c: &mut Call) -> SysResult {
    c.mm().munmap(c.args[0], c.args[1])?;
    Ok(0)
}

pub fn mprotect(c: &mut Call) -> SysResult {
    let prot = c.arg_u32(2);
    // PROT_GROWSDOWN/GROWSUP are accepted and ignored.
    if prot & !(7 | 0x0100_0000 | 0x0200_0000) != 0 {
        return Err(Errno::EINVAL);
    }
    c.mm().mprotect(c.args[0], c.args[1], Prot::from_bits(prot & 7))?;
    Ok(0)
}

pub fn mremap(c: &mut Call) -> SysResult {
    c.mm().mremap(c.args[0], c.args[1], c.args[2], c.arg_u32(3), c.args[4])
}

pub fn brk(c: &mut Call) -> SysResult {
    Ok(c.mm().brk(c.args[0]))
}

const MADV_DONTNEED: u32 = 4;
const MADV_FREE: u32 = 8;
const MADV_REMOVE: u32 = 9;

pub fn madvise(c: &mut Call) -> SysResult {
    let (addr, len) = (c.args[0], c.args[1]);
    if addr % PAGE_SIZE != 0 {
        return Err(Errno::EINVAL);
    }
    if len == 0 {
        return Ok(0);
    }
    match c.arg_u32(2) {
        MADV_DONTNEED | MADV_FREE | MADV_REMOVE => {
            c.mm().discard(addr, len)?;
            Ok(0)
        }
        // Hints with no effect on correctness.
        0..=3 | 10..=21 | 100..=101 => Ok(0),
        _ => Err(Errno::EINVAL),
    }
}

pub fn msync(c: &mut Call) -> SysResult {
    if !c.args[0].is_multiple_of(PAGE_SIZE) {
        return Err(Errno::EINVAL);
    }
    Ok(0)
}

pub fn mlock(_c: &mut Call) -> SysResult {
    Ok(0)
}

pub fn mincore(c: &mut Call) -> SysResult {
    let (addr, len) = (c.args[0], c.args[1]);
    if addr % PAGE_SIZE != 0 {
        return Err(Errno::EINVAL);
    }
    let pages = len.div_ceil(PAGE_SIZE) as usize;
    if pages > 1 << 20 {
        return Err(Errno::ENOMEM);
    }
    c.write_bytes(c.args[2], &vec![1u8; pages])?;
    Ok(0)
}

pub fn membarrier(c: &mut Call) -> SysResult {
    // MEMBARRIER_CMD_QUERY reports nothing supported beyond the global barrier.
    match c.arg_i32(0) {
        0 => Ok(1),
        1 => Ok(0),
        _ => Err(Errno::EINVAL),
    }
}
