//! What a container's process may do, applied by the guest kernel: its capability sets,
//! no_new_privs and a seccomp filter (compiled on the host, installed here as given).
//!
//! The steps run between fork and exec, so they are plain system calls on memory prepared
//! before the fork. The order is runc's: the bounding set shrinks while the process still
//! holds CAP_SETPCAP; a filter goes on before the user changes unless no_new_privs lets an
//! unprivileged process install it last (then it also covers setuid and friends).

use crate::proto;

/// The longest filter the kernel takes (BPF_MAXINSNS).
const MAX_INSNS: usize = 4096;
const CAPS_VERSION_3: u32 = 0x2008_0522;

#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("the seccomp filter is {0} bytes: not whole 8-byte instructions")]
    Ragged(usize),
    #[error("the seccomp filter has {0} instructions; at most {MAX_INSNS}")]
    TooLong(usize),
}

/// A process's security, checked and laid out for the kernel.
#[derive(Debug, Clone)]
pub struct Security {
    /// Bit N: capability N is kept.
    pub capabilities: u64,
    pub no_new_privs: bool,
    filter: Vec<libc::sock_filter>,
    /// The highest capability this kernel knows (/proc/sys/kernel/cap_last_cap).
    last_cap: u32,
}

impl Security {
    pub fn parse(p: &proto::Security) -> Result<Security, SecurityError> {
        let bytes = &p.seccomp_filter;
        if !bytes.len().is_multiple_of(8) {
            return Err(SecurityError::Ragged(bytes.len()));
        }
        if bytes.len() / 8 > MAX_INSNS {
            return Err(SecurityError::TooLong(bytes.len() / 8));
        }
        let filter = bytes
            .chunks_exact(8)
            .map(|b| libc::sock_filter {
                code: u16::from_le_bytes([b[0], b[1]]),
                jt: b[2],
                jf: b[3],
                k: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            })
            .collect();
        let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(40)
            .min(63);
        Ok(Security {
            capabilities: p.capabilities,
            no_new_privs: p.no_new_privs,
            filter,
            last_cap,
        })
    }

    /// Before the user and groups change (the caller is still root with every capability).
    /// Async-signal-safe.
    pub fn before_identity(&self) -> std::io::Result<()> {
        if self.no_new_privs {
            // SAFETY: prctl with integer arguments only.
            check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })?;
        } else {
            self.install_filter()?;
        }
        for cap in 0..=self.last_cap {
            if self.capabilities & (1 << cap) == 0 {
                // SAFETY: prctl with integer arguments only.
                check(unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) })?;
            }
        }
        Ok(())
    }

    /// After the user and groups changed. Root keeps exactly the allowed capabilities; any
    /// other user lost them all when it stopped being root. Async-signal-safe.
    pub fn after_identity(&self, uid: u32) -> std::io::Result<()> {
        if uid == 0 {
            // SAFETY: prctl with integer arguments only.
            check(unsafe {
                libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
            })?;
            let header = CapHeader { version: CAPS_VERSION_3, pid: 0 };
            let (lo, hi) = (self.capabilities as u32, (self.capabilities >> 32) as u32);
            let data = [
                CapData { effective: lo, permitted: lo, inheritable: 0 },
                CapData { effective: hi, permitted: hi, inheritable: 0 },
            ];
            // SAFETY: capset reads the header and two data structs, which live on this stack
            // frame across the call.
            check(unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) } as i32)?;
        }
        if self.no_new_privs {
            self.install_filter()?;
        }
        Ok(())
    }

    fn install_filter(&self) -> std::io::Result<()> {
        if self.filter.is_empty() {
            return Ok(());
        }
        let prog = libc::sock_fprog {
            len: self.filter.len() as u16,
            filter: self.filter.as_ptr().cast_mut(),
        };
        // SAFETY: the kernel copies the program, which `prog` and `self.filter` describe and
        // which outlive the call.
        check(unsafe { libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &prog) }
            as i32)
    }
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn check(r: i32) -> std::io::Result<()> {
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_must_be_whole_and_bounded() {
        let p = |n: usize| proto::Security { seccomp_filter: vec![0; n], ..Default::default() };
        assert!(matches!(Security::parse(&p(12)), Err(SecurityError::Ragged(12))));
        assert!(matches!(Security::parse(&p(8 * 4097)), Err(SecurityError::TooLong(4097))));
        let ok = Security::parse(&p(16)).unwrap();
        assert_eq!(ok.filter.len(), 2);
        let insn = proto::Security {
            seccomp_filter: vec![0x06, 0, 1, 2, 0, 0, 0xff, 0x7f],
            ..Default::default()
        };
        let f = &Security::parse(&insn).unwrap().filter[0];
        assert_eq!((f.code, f.jt, f.jf, f.k), (6, 1, 2, 0x7fff_0000));
    }
}
