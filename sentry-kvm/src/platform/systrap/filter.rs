//! The seccomp filter of a stub process. A syscall made by application code (anywhere outside
//! the stub's code) raises SIGSYS, which the stub hands to the Sentry. The stub's own syscalls
//! are limited to what its code makes, with the arguments it makes them with where a filter
//! can tell: application code may jump into the stub, so this list is all it could ever reach.

use super::layout;

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_TRAP: u32 = 0x0003_0000;
const RET_ALLOW: u32 = 0x7fff_0000;

const ARCH_SET_FS: u32 = 0x1002;
const ARCH_GET_FS: u32 = 0x1003;

/// Flags of the clone that makes a stub thread.
pub const THREAD_FLAGS: u64 = (libc::CLONE_VM
    | libc::CLONE_FS
    | libc::CLONE_FILES
    | libc::CLONE_SIGHAND
    | libc::CLONE_THREAD
    | libc::CLONE_SYSVSEM
    | libc::CLONE_CHILD_SETTID
    | libc::CLONE_CHILD_CLEARTID) as u64;

#[derive(Clone, Copy)]
enum To {
    Next,
    Allow,
    Trap,
    Kill,
    /// The instruction at this index.
    At(usize),
}

enum Insn {
    /// Load the 32-bit word at this offset of seccomp_data.
    Load(u32),
    Jeq(u32, To, To),
    Jgt(u32, To, To),
    Ret(u32),
}

/// seccomp_data offsets.
const NR: u32 = 0;
const ARCH: u32 = 4;
const IP_LO: u32 = 8;
const IP_HI: u32 = 12;
const fn arg_lo(i: u32) -> u32 {
    16 + 8 * i
}
const fn arg_hi(i: u32) -> u32 {
    20 + 8 * i
}

/// The filter for a stub whose code is at `layout::BASE` with syscalls returning to
/// `syscalls` (offsets into the code), and whose guest memory is descriptor `guest_fd`.
pub fn build(syscalls: std::ops::Range<u64>, guest_fd: u32) -> Vec<libc::sock_filter> {
    let (lo, hi) = (layout::BASE + syscalls.start, layout::BASE + syscalls.end);
    assert_eq!(lo >> 32, hi >> 32, "the stub's syscalls within one 4 GiB page");
    use Insn::*;
    use To::*;
    // The argument checks: (syscall, [(offset, value)] all of which must hold).
    let checked: [(i64, &[(u32, u32)]); 8] = [
        (libc::SYS_futex, &[]),
        (libc::SYS_rt_sigreturn, &[]),
        (libc::SYS_exit, &[]),
        (libc::SYS_sigaltstack, &[]),
        (libc::SYS_munmap, &[]),
        (libc::SYS_mmap, &[(arg_lo(4), guest_fd), (arg_hi(4), 0)]),
        (libc::SYS_clone, &[(arg_lo(0), THREAD_FLAGS as u32), (arg_hi(0), 0)]),
        (libc::SYS_arch_prctl, &[(arg_hi(0), 0)]),
    ];
    let mut p = vec![
        Load(ARCH),
        Jeq(AUDIT_ARCH_X86_64, Next, Trap),
        Load(IP_HI),
        Jeq((lo >> 32) as u32, Next, Trap),
        Load(IP_LO),
        Jgt(lo as u32, Next, Trap),
        Jgt(hi as u32, Trap, Next),
    ];
    for (nr, conds) in checked {
        let mut block = Vec::new();
        for (offset, value) in conds {
            block.push(Load(*offset));
            block.push(Jeq(*value, Next, Kill));
        }
        if nr == libc::SYS_arch_prctl {
            block.push(Load(arg_lo(0)));
            block.push(Jeq(ARCH_SET_FS, Allow, Next));
            block.push(Jeq(ARCH_GET_FS, Allow, Kill));
        } else {
            block.push(Ret(RET_ALLOW));
        }
        let after = p.len() + 2 + block.len();
        p.push(Load(NR));
        p.push(Jeq(nr as u32, Next, At(after)));
        p.extend(block);
    }
    p.push(Ret(RET_KILL_PROCESS));
    let (allow, trap, kill) = (p.len(), p.len() + 1, p.len() + 2);
    p.push(Ret(RET_ALLOW));
    p.push(Ret(RET_TRAP));
    p.push(Ret(RET_KILL_PROCESS));
    let jump = |at: usize, to: To| -> u8 {
        let target = match to {
            Next => at + 1,
            Allow => allow,
            Trap => trap,
            Kill => kill,
            At(i) => i,
        };
        u8::try_from(target - (at + 1)).expect("a short filter")
    };
    p.iter()
        .enumerate()
        .map(|(i, insn)| match *insn {
            Load(k) => libc::sock_filter { code: 0x20, jt: 0, jf: 0, k },
            Jeq(k, t, f) => libc::sock_filter { code: 0x15, jt: jump(i, t), jf: jump(i, f), k },
            Jgt(k, t, f) => libc::sock_filter { code: 0x25, jt: jump(i, t), jf: jump(i, f), k },
            Ret(k) => libc::sock_filter { code: 0x06, jt: 0, jf: 0, k },
        })
        .collect()
}
