//! The process security model's system calls: capabilities (capget, capset, the prctl
//! bounding-set, ambient and securebits options), no_new_privs, and seccomp.

use std::sync::atomic::Ordering;

use super::Call;
use crate::abi::Errno;
use crate::abi::errno::SysResult;
use crate::creds::caps::{CapSet, Capability};
use crate::creds::{SECBIT_KEEP_CAPS, SECBIT_NO_CAP_AMBIENT_RAISE, SECBITS_ALL};
use crate::kernel::seccomp::{self, bpf};

const VERSION_1: u32 = 0x1998_0330;
const VERSION_2: u32 = 0x2007_1026;
const VERSION_3: u32 = 0x2008_0522;

/// Reads the capability header; returns how many 32-bit words each set has, and the pid.
/// An unknown version is answered with the one we prefer, written back to the header.
fn cap_header(c: &Call) -> Result<(usize, i32), Errno> {
    let version = c.read_u32(c.args[0])?;
    let pid = c.read_u32(c.args[0].checked_add(4).ok_or(Errno::EFAULT)?)? as i32;
    match version {
        VERSION_1 => Ok((1, pid)),
        VERSION_2 | VERSION_3 => Ok((2, pid)),
        _ => {
            c.write_bytes(c.args[0], &VERSION_3.to_le_bytes())?;
            Err(Errno::EINVAL)
        }
    }
}

pub fn capget(c: &mut Call) -> SysResult {
    let (words, pid) = match cap_header(c) {
        Ok(h) => h,
        // Probing for the version with a NULL data pointer succeeds.
        Err(Errno::EINVAL) if c.args[1] == 0 => return Ok(0),
        Err(e) => return Err(e),
    };
    if pid < 0 {
        return Err(Errno::EINVAL);
    }
    let creds = if pid == 0 {
        c.task.creds()
    } else {
        let t = c.task.kernel.tasks().thread_in(&c.task.pidns(), pid)?;
        t.creds()
    };
    if c.args[1] == 0 {
        return Ok(0);
    }
    let k = creds.caps;
    let mut out = Vec::with_capacity(words * 12);
    for w in 0..words {
        for set in [k.effective, k.permitted, k.inheritable] {
            out.extend_from_slice(&((set.bits() >> (32 * w)) as u32).to_le_bytes());
        }
    }
    c.write_bytes(c.args[1], &out)?;
    Ok(0)
}

pub fn capset(c: &mut Call) -> SysResult {
    let (words, pid) = cap_header(c)?;
    // Only a task's own capabilities may be set.
    if pid != 0 && c.task.pid_global(pid) != Some(c.task.tid()) {
        return Err(Errno::EPERM);
    }
    let data = c.read_bytes(c.args[1], words * 12)?;
    let word = |i: usize| {
        u64::from(u32::from_le_bytes([
            data[i * 4],
            data[i * 4 + 1],
            data[i * 4 + 2],
            data[i * 4 + 3],
        ]))
    };
    let (mut e, mut p, mut i) = (0u64, 0u64, 0u64);
    for w in 0..words {
        e |= word(w * 3) << (32 * w);
        p |= word(w * 3 + 1) << (32 * w);
        i |= word(w * 3 + 2) << (32 * w);
    }
    let (e, p, i) = (CapSet::from_bits(e), CapSet::from_bits(p), CapSet::from_bits(i));
    let mut cr = (*c.task.creds()).clone();
    let old = cr.caps;
    // Inheritable may only grow within permitted (or, with CAP_SETPCAP, the bounding set),
    // never beyond the bounding set; permitted may only shrink; effective stays within it.
    if !cr.has_cap(Capability::SETPCAP) && !i.is_subset(old.inheritable.union(old.permitted)) {
        return Err(Errno::EPERM);
    }
    if !i.is_subset(old.inheritable.union(old.bounding))
        || !p.is_subset(old.permitted)
        || !e.is_subset(p)
    {
        return Err(Errno::EPERM);
    }
    cr.caps.effective = e;
    cr.caps.permitted = p;
    cr.caps.inheritable = i;
    cr.caps.ambient = old.ambient.intersect(p).intersect(i);
    c.task.set_creds(cr);
    Ok(0)
}

const SECCOMP_SET_MODE_STRICT: u32 = 0;
const SECCOMP_SET_MODE_FILTER: u32 = 1;
const SECCOMP_GET_ACTION_AVAIL: u32 = 2;

fn set_mode_filter(c: &Call, flags: u32, uargs: u64) -> SysResult {
    seccomp::check_flags(flags)?;
    // struct sock_fprog: u16 len, padding, then the instructions' address.
    let len = (c.read_u32(uargs)? & 0xffff) as usize;
    let addr = c.read_u64(uargs.checked_add(8).ok_or(Errno::EFAULT)?)?;
    if len == 0 || len > bpf::MAX_INSNS {
        return Err(Errno::EINVAL);
    }
    seccomp::may_filter(c.task)?;
    let raw = c.read_bytes(addr, len * bpf::Insn::SIZE)?;
    let insns = raw
        .chunks_exact(bpf::Insn::SIZE)
        .map(|b| bpf::Insn::from_bytes(b.try_into().unwrap_or(&[0xff; 8])))
        .collect();
    let prog = bpf::Program::new(insns).map_err(|_| Errno::EINVAL)?;
    seccomp::add_filter(c.task, prog, flags)
}

pub fn seccomp(c: &mut Call) -> SysResult {
    let (op, flags, uargs) = (c.arg_u32(0), c.arg_u32(1), c.args[2]);
    match op {
        SECCOMP_SET_MODE_STRICT => {
            if flags != 0 || uargs != 0 {
                return Err(Errno::EINVAL);
            }
            seccomp::set_strict(c.task)?;
            Ok(0)
        }
        SECCOMP_SET_MODE_FILTER => set_mode_filter(c, flags, uargs),
        SECCOMP_GET_ACTION_AVAIL => {
            if flags != 0 {
                return Err(Errno::EINVAL);
            }
            let action = c.read_u32(uargs)?;
            if seccomp::filter::Action::available(action) { Ok(0) } else { Err(Errno::EOPNOTSUPP) }
        }
        _ => Err(Errno::EINVAL),
    }
}

const PR_GET_KEEPCAPS: u32 = 7;
const PR_SET_KEEPCAPS: u32 = 8;
const PR_GET_SECCOMP: u32 = 21;
const PR_SET_SECCOMP: u32 = 22;
const PR_CAPBSET_READ: u32 = 23;
const PR_CAPBSET_DROP: u32 = 24;
const PR_GET_SECUREBITS: u32 = 27;
const PR_SET_SECUREBITS: u32 = 28;
const PR_SET_NO_NEW_PRIVS: u32 = 38;
const PR_GET_NO_NEW_PRIVS: u32 = 39;
const PR_CAP_AMBIENT: u32 = 47;

const PR_CAP_AMBIENT_IS_SET: u64 = 1;
const PR_CAP_AMBIENT_RAISE: u64 = 2;
const PR_CAP_AMBIENT_LOWER: u64 = 3;
const PR_CAP_AMBIENT_CLEAR_ALL: u64 = 4;

/// Whether prctl `option` is one of ours.
pub fn is_prctl_option(option: u32) -> bool {
    matches!(
        option,
        PR_GET_KEEPCAPS
            | PR_SET_KEEPCAPS
            | PR_GET_SECCOMP
            | PR_SET_SECCOMP
            | PR_CAPBSET_READ
            | PR_CAPBSET_DROP
            | PR_GET_SECUREBITS
            | PR_SET_SECUREBITS
            | PR_SET_NO_NEW_PRIVS
            | PR_GET_NO_NEW_PRIVS
            | PR_CAP_AMBIENT
    )
}

fn capability(arg: u64) -> Result<Capability, Errno> {
    Capability::from_number(arg).ok_or(Errno::EINVAL)
}

pub fn prctl(c: &mut Call) -> SysResult {
    let a = c.args;
    let creds = c.task.creds();
    match c.arg_u32(0) {
        PR_GET_KEEPCAPS => Ok(u64::from(creds.securebits & SECBIT_KEEP_CAPS != 0)),
        PR_SET_KEEPCAPS => {
            if a[1] > 1 {
                return Err(Errno::EINVAL);
            }
            if creds.securebits & (SECBIT_KEEP_CAPS << 1) != 0 {
                return Err(Errno::EPERM);
            }
            let mut cr = (*creds).clone();
            cr.securebits = if a[1] == 1 {
                cr.securebits | SECBIT_KEEP_CAPS
            } else {
                cr.securebits & !SECBIT_KEEP_CAPS
            };
            c.task.set_creds(cr);
            Ok(0)
        }
        PR_GET_SECUREBITS => Ok(u64::from(creds.securebits)),
        PR_SET_SECUREBITS => {
            let new = a[1];
            if new & !u64::from(SECBITS_ALL) != 0 {
                return Err(Errno::EINVAL);
            }
            let new = new as u32;
            let old = creds.securebits;
            // Lock bits (odd positions) freeze their flag and cannot be cleared.
            let locks = old & 0xaa;
            let frozen = locks | (locks >> 1);
            if (new ^ old) & frozen != 0 || !creds.has_cap(Capability::SETPCAP) {
                return Err(Errno::EPERM);
            }
            let mut cr = (*creds).clone();
            cr.securebits = new;
            c.task.set_creds(cr);
            Ok(0)
        }
        PR_CAPBSET_READ => Ok(u64::from(creds.caps.bounding.has(capability(a[1])?))),
        PR_CAPBSET_DROP => {
            let cap = capability(a[1])?;
            if !creds.has_cap(Capability::SETPCAP) {
                return Err(Errno::EPERM);
            }
            let mut cr = (*creds).clone();
            cr.caps.bounding.remove(cap);
            c.task.set_creds(cr);
            Ok(0)
        }
        PR_CAP_AMBIENT => {
            if a[3] != 0 || a[4] != 0 {
                return Err(Errno::EINVAL);
            }
            let mut cr = (*creds).clone();
            match a[1] {
                PR_CAP_AMBIENT_CLEAR_ALL => {
                    if a[2] != 0 {
                        return Err(Errno::EINVAL);
                    }
                    cr.caps.ambient = CapSet::EMPTY;
                }
                PR_CAP_AMBIENT_IS_SET => {
                    return Ok(u64::from(cr.caps.ambient.has(capability(a[2])?)));
                }
                PR_CAP_AMBIENT_RAISE => {
                    let cap = capability(a[2])?;
                    if !cr.caps.permitted.has(cap)
                        || !cr.caps.inheritable.has(cap)
                        || cr.securebits & SECBIT_NO_CAP_AMBIENT_RAISE != 0
                    {
                        return Err(Errno::EPERM);
                    }
                    cr.caps.ambient.add(cap);
                }
                PR_CAP_AMBIENT_LOWER => cr.caps.ambient.remove(capability(a[2])?),
                _ => return Err(Errno::EINVAL),
            }
            c.task.set_creds(cr);
            Ok(0)
        }
        PR_SET_NO_NEW_PRIVS => {
            if a[1] != 1 || a[2] != 0 || a[3] != 0 || a[4] != 0 {
                return Err(Errno::EINVAL);
            }
            c.task.no_new_privs.store(true, Ordering::SeqCst);
            Ok(0)
        }
        PR_GET_NO_NEW_PRIVS => {
            if a[1] != 0 || a[2] != 0 || a[3] != 0 || a[4] != 0 {
                return Err(Errno::EINVAL);
            }
            Ok(u64::from(c.task.no_new_privs.load(Ordering::SeqCst)))
        }
        PR_GET_SECCOMP => Ok(u64::from(c.task.seccomp.mode().number())),
        PR_SET_SECCOMP => match a[1] {
            1 => {
                if a[2] != 0 {
                    return Err(Errno::EINVAL);
                }
                seccomp::set_strict(c.task)?;
                Ok(0)
            }
            2 => set_mode_filter(c, 0, a[2]),
            _ => Err(Errno::EINVAL),
        },
        _ => Err(Errno::EINVAL),
    }
}
