//! The thread that starts stub processes. A stub is a `clone` of the Sentry that maps its
//! region, jumps into it and unmaps everything else; it asks to die with the thread that made
//! it, so that thread lives as long as the platform.

use std::sync::mpsc;

use super::layout;
use super::process::Page;
use crate::platform::PlatformError;
use crate::sync::Mutex;

unsafe extern "C" {
    /// glibc's offset of the thread's rseq area from the thread pointer, and its size.
    static __rseq_offset: isize;
    static __rseq_size: u32;
}

struct Request {
    region_fd: i32,
    page: Page,
    reply: mpsc::Sender<Result<i32, PlatformError>>,
}

// SAFETY: the page pointer stays valid while the requester waits for the reply.
unsafe impl Send for Request {}

pub struct Spawner {
    tx: Mutex<mpsc::Sender<Request>>,
}

impl Spawner {
    pub fn new() -> Result<Spawner, PlatformError> {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("stub-spawner".into())
            .spawn(move || {
                for r in rx {
                    let _ = r.reply.send(spawn_here(r.region_fd, r.page));
                }
            })
            .map_err(|e| PlatformError::Config(format!("the stub spawner thread: {e}")))?;
        Ok(Spawner { tx: Mutex::new(tx) })
    }

    /// Starts a stub on region `region_fd` whose control page is `page`; returns its pid.
    pub fn spawn(&self, region_fd: i32, page: Page) -> Result<i32, PlatformError> {
        let (reply, answer) = mpsc::channel();
        let sent = self.tx.lock().unwrap_or_else(|e| e.into_inner()).send(Request {
            region_fd,
            page,
            reply,
        });
        if sent.is_err() {
            return Err(PlatformError::Config("the stub spawner is gone".into()));
        }
        answer.recv().map_err(|_| PlatformError::Config("the stub spawner is gone".into()))?
    }
}

fn spawn_here(region_fd: i32, page: Page) -> Result<i32, PlatformError> {
    let tp: u64;
    // SAFETY: reads the thread pointer (FS:0 holds it on x86-64 glibc).
    unsafe { std::arch::asm!("mov {}, fs:0", out(reg) tp) };
    // SAFETY: glibc's exported rseq layout symbols, read only.
    let (offset, size) = unsafe { (__rseq_offset, __rseq_size) };
    page.set(layout::msg::RSEQ, tp.wrapping_add_signed(offset as i64));
    page.set(layout::msg::RSEQ_LEN, u64::from(size.max(32)));
    let pid: i64;
    // SAFETY: a fork-like clone. The child uses no stack and no Rust code: it maps the region's
    // code (read, execute) and slots (read, write) at their fixed place and jumps to the code,
    // which never returns; a failed mapping ends it. The parent only gets the result.
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "mov eax, 9",
            "mov rdi, r12",
            "mov esi, {code_size}",
            "mov edx, 5",
            "mov r10d, 0x11",
            "mov r8, r14",
            "xor r9d, r9d",
            "syscall",
            "cmp rax, r12",
            "jne 3f",
            "mov eax, 9",
            "lea rdi, [r12 + {slots}]",
            "mov rsi, r13",
            "mov edx, 3",
            "mov r10d, 0x11",
            "mov r8, r14",
            "mov r9d, {slots}",
            "syscall",
            "lea rdi, [r12 + {slots}]",
            "cmp rax, rdi",
            "jne 3f",
            "jmp r12",
            "3:",
            "mov eax, 231",
            "mov edi, 126",
            "syscall",
            "2:",
            code_size = const layout::CODE_SIZE,
            slots = const layout::SLOTS,
            in("r12") layout::BASE,
            in("r13") layout::SIZE - layout::SLOTS,
            in("r14") region_fd as u64,
            inlateout("rax") libc::SYS_clone => pid,
            in("rdi") libc::SIGCHLD as u64,
            in("rsi") 0u64,
            in("rdx") 0u64,
            in("r10") 0u64,
            in("r8") 0u64,
            out("rcx") _,
            out("r11") _,
            out("r9") _,
        );
    }
    if pid < 0 {
        return Err(PlatformError::Config(format!("starting a stub process: errno {}", -pid)));
    }
    Ok(pid as i32)
}
