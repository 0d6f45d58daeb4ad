//! The Linux x86-64 syscall ABI: one table (`table.rs`) and one module per family.

pub mod sys_file;
pub mod sys_fs;
pub mod sys_futex;
pub mod sys_info;
pub mod sys_inotify;
pub mod sys_ipc;
pub mod sys_lock;
pub mod sys_mmap;
pub mod sys_poll;
pub mod sys_process;
pub mod sys_sched;
pub mod sys_security;
pub mod sys_signal;
pub mod sys_socket;
pub mod sys_time;
pub mod sys_timer;
pub mod table;

use std::sync::Arc;

use crate::abi::Errno;
use crate::abi::errno::SysResult;
use crate::abi::stat::AT_FDCWD;
use crate::kernel::task::Task;
use crate::mm::address_space::MemoryManager;
use crate::platform::Cpu;
use crate::platform::UserContext;
use crate::vfs::Location;
use crate::vfs::file::File;
use crate::vfs::path::{Last, PATH_MAX, Resolver};

/// How a syscall ends.
pub enum Outcome {
    /// Put this value in rax.
    Return(u64),
    Error(Errno),
    /// The handler set every register itself (execve, rt_sigreturn).
    Registers,
    /// The calling thread exits with this code.
    Exit(i32),
}

/// One syscall in progress.
pub struct Call<'a> {
    pub task: &'a Arc<Task>,
    pub ctx: &'a mut UserContext,
    pub cpu: &'a mut dyn Cpu,
    pub args: [u64; 6],
    /// Set by handlers whose outcome is not a plain return value.
    pub special: Option<Outcome>,
}

impl Call<'_> {
    pub fn mm(&self) -> Arc<MemoryManager> {
        self.task.mm()
    }

    pub fn arg_i32(&self, i: usize) -> i32 {
        self.args[i] as i32
    }

    pub fn arg_u32(&self, i: usize) -> u32 {
        self.args[i] as u32
    }

    /// A path argument.
    pub fn path(&self, i: usize) -> Result<Vec<u8>, Errno> {
        let addr = self.args[i];
        if addr == 0 {
            return Err(Errno::EFAULT);
        }
        self.mm().read_cstring(addr, PATH_MAX)
    }

    pub fn file(&self, fd: i32) -> Result<Arc<File>, Errno> {
        self.task.files().get(fd)
    }

    /// The process's RLIMIT_NOFILE: new descriptors stay below it.
    pub fn nofile_limit(&self) -> u64 {
        self.task.tg().rlimit(7).0
    }

    /// Installs `file` at the lowest free descriptor; returns the descriptor.
    pub fn install(&self, file: Arc<File>, cloexec: bool) -> SysResult {
        self.task.files().install(file, cloexec, 0, self.nofile_limit()).map(|fd| fd as u64)
    }

    pub fn read_bytes(&self, addr: u64, len: usize) -> Result<Vec<u8>, Errno> {
        let mut b = vec![0u8; len];
        self.mm().copy_in(addr, &mut b)?;
        Ok(b)
    }

    pub fn read_u64(&self, addr: u64) -> Result<u64, Errno> {
        let mut b = [0u8; 8];
        self.mm().copy_in(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    pub fn read_u32(&self, addr: u64) -> Result<u32, Errno> {
        let mut b = [0u8; 4];
        self.mm().copy_in(addr, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    pub fn write_bytes(&self, addr: u64, data: &[u8]) -> Result<(), Errno> {
        self.mm().copy_out(addr, data)
    }

    /// Where relative paths start for a `*at` call with `dirfd`.
    pub fn start_dir(&self, dirfd: i32) -> Result<Location, Errno> {
        if dirfd == AT_FDCWD {
            return Ok(self.task.fs().cwd());
        }
        let f = self.file(dirfd)?;
        let loc = f.location.clone().ok_or(Errno::ENOTDIR)?;
        if loc.inode.file_type() != crate::abi::stat::FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        Ok(loc)
    }

    pub fn resolver(&self, dirfd: i32, path: &[u8]) -> Result<Resolver<'_>, Errno> {
        let fs = self.task.fs();
        let start = if path.first() == Some(&b'/') { fs.root() } else { self.start_dir(dirfd)? };
        Ok(Resolver { ctx: &**self.task, root: fs.root(), start })
    }

    /// Resolves `path` relative to `dirfd`.
    pub fn lookup(&self, dirfd: i32, path: &[u8], follow: bool) -> Result<Location, Errno> {
        self.resolver(dirfd, path)?
            .resolve(path, if follow { Last::Follow } else { Last::NoFollow })
    }
}

/// Handles the syscall whose number is in rax.
pub fn dispatch(task: &Arc<Task>, ctx: &mut UserContext, cpu: &mut dyn Cpu) -> Outcome {
    let nr = ctx.regs.rax;
    let r = &ctx.regs;
    let args = [r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9];
    if task.seccomp.is_on()
        && let Some(o) = crate::kernel::seccomp::enforce(task, nr, r.rip, &args)
    {
        return o;
    }
    let Some(entry) = table::lookup(nr) else {
        task.kernel.report_unimplemented(nr, "unknown");
        return Outcome::Error(Errno::ENOSYS);
    };
    let Some(handler) = entry.handler else {
        if entry.note.is_empty() {
            task.kernel.report_unimplemented(nr, entry.name);
        }
        return Outcome::Error(Errno::ENOSYS);
    };
    let mut call = Call { task, ctx, cpu, args, special: None };
    let result: SysResult = handler(&mut call);
    if tracing::enabled!(tracing::Level::TRACE) {
        tracing::trace!(
            tid = task.tid(),
            "{}({:#x}, {:#x}, {:#x}) = {:?}",
            entry.name,
            args[0],
            args[1],
            args[2],
            result
        );
    }
    if let Some(o) = call.special.take() {
        return o;
    }
    match result {
        Ok(v) => Outcome::Return(v),
        Err(e) => Outcome::Error(e),
    }
}
