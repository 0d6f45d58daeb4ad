//! execve: resolve and check the program, handle `#!`, load a fresh image, then (past the
//! point of no return) replace the process's memory, signals and close-on-exec descriptors.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::abi::Errno;
use crate::abi::stat::{FileType, O_RDONLY};
use crate::creds::SetIds;
use crate::kernel::task::Task;
use crate::loader::{self, Program};
use crate::mm::address_space::MemoryManager;
use crate::platform::Cpu;
use crate::platform::UserContext;
use crate::platform::kvm::layout;
use crate::vfs::Location;
use crate::vfs::file::File;
use crate::vfs::notify::event::{IN_ACCESS, IN_OPEN};
use crate::vfs::path::{Last, Resolver};

const MAX_INTERPRETER_DEPTH: u32 = 4;

/// Resolves `path` from `start` and opens it for execution.
pub fn open_exec(
    task: &Task,
    start: &Location,
    path: &[u8],
) -> Result<(Arc<File>, Location), Errno> {
    let fs = task.fs();
    let r = Resolver { ctx: task, root: fs.root(), start: start.clone() };
    let loc = r.resolve(path, Last::Follow)?;
    let st = loc.inode.stat()?;
    match loc.inode.file_type() {
        FileType::Regular => {}
        FileType::Directory => return Err(Errno::EACCES),
        _ => return Err(Errno::EACCES),
    }
    let creds = task.creds();
    if !creds.may_access(&st, 1) || st.mode & 0o111 == 0 {
        return Err(Errno::EACCES);
    }
    let ops = loc.inode.clone().open(O_RDONLY)?;
    let file = File::new(ops, O_RDONLY, Some(loc.clone()), path.to_vec());
    // inotify sees the program opened, read (by the loader) and closed, as on Linux.
    file.report_to(&task.kernel.notify);
    file.report(IN_OPEN);
    Ok((file, loc))
}

/// Parses a `#!` line: interpreter and optional single argument.
fn parse_shebang(head: &[u8]) -> Result<(Vec<u8>, Option<Vec<u8>>), Errno> {
    let line = &head[2..];
    let end = line.iter().position(|&b| b == b'\n').unwrap_or(line.len());
    let line = &line[..end];
    let trimmed: &[u8] = {
        let s = line.iter().position(|b| !b" \t".contains(b)).unwrap_or(line.len());
        let e = line.iter().rposition(|b| !b" \t\r".contains(b)).map(|i| i + 1).unwrap_or(s);
        if s >= e { &[] } else { &line[s..e] }
    };
    if trimmed.is_empty() {
        return Err(Errno::ENOEXEC);
    }
    let split = trimmed.iter().position(|b| b" \t".contains(b));
    Ok(match split {
        None => (trimmed.to_vec(), None),
        Some(i) => {
            let rest = &trimmed[i..];
            let a = rest.iter().position(|b| !b" \t".contains(b)).unwrap_or(rest.len());
            let arg = &rest[a..];
            (trimmed[..i].to_vec(), (!arg.is_empty()).then(|| arg.to_vec()))
        }
    })
}

/// A program loaded into a fresh address space, not yet installed.
pub struct Prepared {
    pub mm: Arc<MemoryManager>,
    pub entry: u64,
    pub sp: u64,
    pub exe: Vec<u8>,
    pub exe_location: Location,
    pub comm: Vec<u8>,
    /// What the program file's set-user-ID and set-group-ID bits give.
    pub set_ids: SetIds,
}

/// Opens `path` (following `#!` interpreters) and loads it into a new address space. Nothing
/// about the calling process changes yet, so failures leave it intact.
pub fn prepare(
    task: &Arc<Task>,
    start: &Location,
    path: &[u8],
    mut argv: Vec<Vec<u8>>,
    envp: Vec<Vec<u8>>,
) -> Result<Prepared, Errno> {
    let mut path = path.to_vec();
    let execfn = path.clone();
    let mut depth = 0;
    let (file, loc, head) = loop {
        let (file, loc) = open_exec(task, start, &path)?;
        let mut head = vec![0u8; 1024];
        let n = file.ops.read_at(&**task, &mut head, 0)?;
        if n > 0 {
            file.report(IN_ACCESS);
        }
        head.truncate(n);
        if head.starts_with(b"#!") {
            depth += 1;
            if depth > MAX_INTERPRETER_DEPTH {
                return Err(Errno::ELOOP);
            }
            let (interp, arg) = parse_shebang(&head)?;
            let mut new_argv = vec![interp.clone()];
            new_argv.extend(arg);
            new_argv.push(path.clone());
            new_argv.extend(argv.into_iter().skip(1));
            argv = new_argv;
            path = interp;
            continue;
        }
        if !loader::elf::is_elf(&head) {
            return Err(Errno::ENOEXEC);
        }
        break (file, loc, head);
    };
    let mm = Arc::new(MemoryManager::new(task.kernel.phys.clone(), layout::KERNEL_PDPT)?);
    let prog = Program { file: &file, head: &head, argv: &argv, envp: &envp, execfn: &execfn };
    let open_interp = |p: &[u8]| open_exec(task, start, p).map(|(f, _)| f);
    let loaded = loader::load(task, &mm, &prog, &open_interp)?;
    let exe = crate::vfs::path::path_of(&task.fs().root(), &loc).unwrap_or_else(|| path.clone());
    let base = path.rsplit(|&b| b == b'/').next().unwrap_or(&path);
    let comm = base.iter().take(15).copied().collect();
    let set_ids = SetIds::of(&loc.inode.stat()?);
    Ok(Prepared { mm, entry: loaded.entry, sp: loaded.sp, exe, exe_location: loc, comm, set_ids })
}

/// Installs a prepared image as the task's process image; returns the entry context.
pub fn commit(task: &Arc<Task>, p: Prepared) -> UserContext {
    de_thread(task);
    let old_mm = task.set_mm(p.mm.clone());
    crate::kernel::ipc::shm::exec_detached(&old_mm, task);
    drop(old_mm);
    let tg = task.tg();
    {
        let mut st = tg.lock();
        st.did_exec = true;
        st.exe = p.exe;
        st.exe_location = Some(p.exe_location);
        // A handler table shared with another process (CLONE_SIGHAND without CLONE_THREAD)
        // is unshared, with handled signals reset to their defaults.
        let mut own = st.handlers.lock().unwrap_or_else(|e| e.into_inner()).clone();
        own.reset_for_exec();
        st.handlers = Arc::new(crate::sync::Mutex::new(own));
    }
    drop(task.files().close_on_exec());
    // POSIX timers do not survive exec (interval timers do).
    tg.timers.clear();
    task.sig().altstack = Default::default();
    *task.comm.lock().unwrap_or_else(|e| e.into_inner()) = p.comm;
    task.clear_child_tid.store(0, Ordering::Relaxed);
    let mut creds = (*task.creds()).clone();
    creds.exec(p.set_ids, task.no_new_privs.load(Ordering::SeqCst));
    task.set_creds(creds);
    if let Some(c) = task.vfork_done.lock().unwrap_or_else(|e| e.into_inner()).take() {
        c.complete();
    }
    let mut ctx = UserContext { cr3: p.mm.root().0, ..Default::default() };
    ctx.regs.rip = p.entry;
    ctx.regs.rsp = p.sp;
    ctx.regs.rflags = 0x202;
    ctx
}

/// execve for a running task: on success `ctx` holds the new image's entry state.
pub fn execve(
    task: &Arc<Task>,
    ctx: &mut UserContext,
    cpu: &mut dyn Cpu,
    start: &Location,
    path: &[u8],
    argv: Vec<Vec<u8>>,
    envp: Vec<Vec<u8>>,
) -> Result<(), Errno> {
    let prepared = prepare(task, start, path, argv, envp)?;
    *ctx = commit(task, prepared);
    cpu.set_fpu(&task.kernel.clean_fpu).map_err(|_| Errno::EIO)?;
    Ok(())
}

/// Makes `task` the only thread of its group (other threads exit), as execve requires.
fn de_thread(task: &Arc<Task>) {
    let tg = task.tg();
    let others: Vec<Arc<Task>> =
        tg.threads().into_iter().filter(|t| !Arc::ptr_eq(t, task)).collect();
    if others.is_empty() {
        return;
    }
    for t in &others {
        t.exiting.store(true, Ordering::SeqCst);
        t.interrupt();
    }
    let reg = tg.child_events.register(&task.waker, crate::waiter::Events::ALL);
    while tg.lock().threads.len() > 1 {
        let _ = task
            .waker
            .block(Some(std::time::Instant::now() + std::time::Duration::from_millis(50)));
    }
    drop(reg);
    // The survivor takes over the thread-group id, as on Linux.
    if task.tid() != tg.tgid {
        let mut tasks = task.kernel.tasks();
        tasks.threads.remove(&task.tid());
        task.set_tid(tg.tgid);
        tasks.threads.insert(tg.tgid, task.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::parse_shebang;

    #[test]
    fn shebang_lines() {
        assert_eq!(parse_shebang(b"#!/bin/sh\necho").unwrap(), (b"/bin/sh".to_vec(), None));
        assert_eq!(
            parse_shebang(b"#! /usr/bin/env  python3 \n").unwrap(),
            (b"/usr/bin/env".to_vec(), Some(b"python3".to_vec()))
        );
        assert_eq!(
            parse_shebang(b"#!/bin/awk -f -x\n").unwrap(),
            (b"/bin/awk".to_vec(), Some(b"-f -x".to_vec()))
        );
        assert!(parse_shebang(b"#!\n").is_err());
    }
}
