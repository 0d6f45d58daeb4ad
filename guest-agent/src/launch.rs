//! Starting a program without copying the agent: `clone(CLONE_VM | CLONE_VFORK)`, as
//! posix_spawn does. A fork copies the agent's page tables and makes every page it writes
//! afterwards fault, and the child's exec then tears that copy down again; on hosts whose KVM
//! emulates guest kernel code that is most of a process's start. The child runs on a stack of
//! its own in the agent's memory while the calling thread waits, so everything it uses is made
//! before the clone and it only makes system calls.

use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};

/// What the child runs, prepared by the caller.
pub struct Launch {
    /// The paths to try in order (a PATH search, already expanded), each with the
    /// arguments to run it as a shell script should the kernel not know its format.
    candidates: Vec<(CString, Vec<CString>)>,
    argv: Vec<CString>,
    envp: Vec<CString>,
    /// Descriptors that become the child's 0, 1 and 2.
    pub stdio: [RawFd; 3],
    /// Starts a PID namespace whose PID 1 the child is.
    pub new_pid_namespace: bool,
}

const STACK_SIZE: usize = 256 * 1024;

impl Launch {
    /// `program` as execvp finds it: a name without a slash is looked up in `path` (in the
    /// child, after whatever setup changed its root).
    pub fn new(program: &str, args: &[String], env: &[(String, String)], path: &str) -> Launch {
        let c = |s: &str| CString::new(s).unwrap_or_default();
        let argv: Vec<CString> = args.iter().map(|a| c(a)).collect();
        let paths: Vec<String> = if program.contains('/') {
            vec![program.to_owned()]
        } else {
            path.split(':')
                .map(|dir| match dir {
                    "" => program.to_owned(),
                    dir => format!("{}/{program}", dir.trim_end_matches('/')),
                })
                .collect()
        };
        let candidates = paths
            .iter()
            .map(|p| {
                let script = [c("/bin/sh"), c(p)].into_iter().chain(argv.iter().skip(1).cloned());
                (c(p), script.collect())
            })
            .collect();
        let envp = env.iter().map(|(k, v)| c(&format!("{k}={v}"))).collect();
        Launch { candidates, argv, envp, stdio: [-1; 3], new_pid_namespace: false }
    }

    /// Starts the child, which runs `setup` (system calls only: it shares the agent's memory
    /// and the agent's other threads run on) and then the program. Answers its pid once the
    /// exec happened; an error of the setup or the exec is returned, its child reaped.
    pub fn start(&self, setup: &(dyn Fn() -> io::Result<()> + Sync)) -> io::Result<i32> {
        let nul_terminated = |v: &[CString]| -> Vec<*const libc::c_char> {
            v.iter().map(|s| s.as_ptr()).chain(std::iter::once(std::ptr::null())).collect()
        };
        let candidates: Vec<(*const libc::c_char, Vec<*const libc::c_char>)> = self
            .candidates
            .iter()
            .map(|(p, script)| (p.as_ptr(), nul_terminated(script)))
            .collect();
        let child = Child {
            launch: self,
            caught: caught_signals(),
            setup,
            candidates: &candidates,
            argv: nul_terminated(&self.argv),
            envp: nul_terminated(&self.envp),
            error: AtomicI32::new(0),
        };
        let stack = Stack::new()?;
        let mut flags = libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD;
        if self.new_pid_namespace {
            flags |= libc::CLONE_NEWPID;
        }
        // All signals held while the child shares the agent's memory: none may run one of
        // the agent's handlers there (the child drops them before it lets signals in).
        let mask = SignalMask::block_all();
        // SAFETY: the child runs `run_child` on its own stack, which outlives it (the calling
        // thread waits for its exec or exit: CLONE_VFORK); it reads `child`, which lives on
        // this frame across the call, and only makes system calls.
        let pid = unsafe {
            libc::clone(run_child, stack.top(), flags, std::ptr::from_ref(&child).cast_mut().cast())
        };
        let cloned = io::Error::last_os_error();
        drop(mask);
        if pid < 0 {
            return Err(cloned);
        }
        match child.error.load(Ordering::Acquire) {
            0 => Ok(pid),
            errno => {
                let mut status = 0;
                // SAFETY: reaps our own child, which has exited (its error is set just before).
                unsafe { libc::waitpid(pid, &mut status, 0) };
                Err(io::Error::from_raw_os_error(errno))
            }
        }
    }
}

/// What the child reads from the agent's memory.
struct Child<'a> {
    launch: &'a Launch,
    /// The signals the agent has handlers for (bit n-1 for signal n).
    caught: u64,
    setup: &'a (dyn Fn() -> io::Result<()> + Sync),
    candidates: &'a [(*const libc::c_char, Vec<*const libc::c_char>)],
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    /// The errno that ended the child before its exec (0: it exec'd).
    error: AtomicI32,
}

extern "C" fn run_child(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `Child` on the waiting parent's frame (see `Launch::start`).
    let child = unsafe { &*arg.cast::<Child>() };
    let errno = match child.prepare() {
        Ok(()) => child.exec(),
        Err(e) => e.raw_os_error().unwrap_or(libc::EINVAL),
    };
    child.error.store(errno.max(1), Ordering::Release);
    // SAFETY: ends the child without running anything of the agent's.
    unsafe { libc::_exit(127) }
}

impl Child<'_> {
    fn prepare(&self) -> io::Result<()> {
        let check = |r: libc::c_int| if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) };
        // SAFETY: sigaction on stack structs; dup2 and fcntl on descriptors the caller keeps
        // open until the exec.
        unsafe {
            // The agent's handlers are code in memory the child shares: back to the
            // defaults, and SIGPIPE too, which the Rust runtime ignores. Only those: a system
            // call per signal is not free where guest kernel code is emulated.
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            for sig in 1..=64 {
                if sig == libc::SIGPIPE || self.caught & (1 << (sig - 1)) != 0 {
                    libc::sigaction(sig, &dfl, std::ptr::null_mut());
                }
            }
            for (target, &fd) in self.launch.stdio.iter().enumerate() {
                let target = target as RawFd;
                if fd == target {
                    // Already in place, but close-on-exec like all the agent's descriptors.
                    check(libc::fcntl(fd, libc::F_SETFD, 0))?;
                } else {
                    check(libc::dup2(fd, target))?;
                }
            }
        }
        (self.setup)()?;
        // SAFETY: an empty set on the stack, read by sigprocmask.
        unsafe {
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        }
        Ok(())
    }

    /// Tries each candidate as execvp does; answers the errno when none ran.
    fn exec(&self) -> libc::c_int {
        let mut denied = false;
        let mut last = libc::ENOENT;
        for (path, script) in self.candidates {
            // SAFETY: NUL-terminated strings and NULL-terminated arrays made before the clone.
            unsafe { libc::execve(*path, self.argv.as_ptr(), self.envp.as_ptr()) };
            last = io::Error::last_os_error().raw_os_error().unwrap_or(libc::ENOENT);
            match last {
                // A file without a format the kernel knows is a shell script.
                libc::ENOEXEC => {
                    // SAFETY: as above.
                    unsafe { libc::execve(script[0], script.as_ptr(), self.envp.as_ptr()) };
                    return io::Error::last_os_error().raw_os_error().unwrap_or(libc::ENOEXEC);
                }
                libc::EACCES => denied = true,
                libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
                _ => return last,
            }
        }
        if denied { libc::EACCES } else { last }
    }
}

/// The signals this process has handlers for, from /proc (every signal when it cannot tell).
fn caught_signals() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .unwrap_or(u64::MAX)
}

/// The child's stack, mapped for the clone and unmapped after it.
struct Stack(*mut libc::c_void);

impl Stack {
    fn new() -> io::Result<Stack> {
        // SAFETY: a fresh private anonymous mapping; the result is checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                STACK_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED { Err(io::Error::last_os_error()) } else { Ok(Stack(p)) }
    }

    /// The stack's highest address (it grows down), 16-byte aligned as the ABI wants.
    fn top(&self) -> *mut libc::c_void {
        // SAFETY: one past the end of the mapping, which is page-aligned.
        unsafe { self.0.cast::<u8>().add(STACK_SIZE).cast() }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: the mapping from `new`; the child no longer runs on it (it exec'd or exited).
        unsafe { libc::munmap(self.0, STACK_SIZE) };
    }
}

/// The calling thread's signal mask, restored on drop.
struct SignalMask(libc::sigset_t);

impl SignalMask {
    fn block_all() -> SignalMask {
        // SAFETY: sets on the stack, filled by sigfillset and pthread_sigmask.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
            SignalMask(old)
        }
    }
}

impl Drop for SignalMask {
    fn drop(&mut self) {
        // SAFETY: restores the set saved in `block_all`.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut()) };
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::fd::{AsRawFd, OwnedFd};

    use super::*;

    fn pipe() -> (OwnedFd, OwnedFd) {
        crate::process::pipe().expect("pipe2")
    }

    fn wait(pid: i32) -> i32 {
        let mut status = 0;
        // SAFETY: waits for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        libc::WEXITSTATUS(status)
    }

    fn run(l: &mut Launch, setup: &(dyn Fn() -> io::Result<()> + Sync)) -> (i32, String) {
        let (r, w) = pipe();
        l.stdio = [w.as_raw_fd(); 3];
        let pid = l.start(setup).unwrap();
        drop(w);
        let mut out = String::new();
        std::fs::File::from(r).read_to_string(&mut out).unwrap();
        (wait(pid), out)
    }

    #[test]
    fn a_program_is_found_on_the_path_and_gets_its_arguments_and_environment() {
        let env = [("GREETING".to_owned(), "hello".to_owned())];
        let args: Vec<String> =
            ["sh", "-c", "echo $GREETING $0 $1; exit 3", "x"].map(String::from).into();
        let mut l = Launch::new("sh", &args, &env, "/nonexistent:/bin");
        let (code, out) = run(&mut l, &|| Ok(()));
        assert_eq!((code, out.as_str()), (3, "hello x\n"));
    }

    #[test]
    fn the_caught_signals_are_read_from_proc() {
        extern "C" fn nothing(_: libc::c_int) {}
        // SAFETY: installs a handler that does nothing for a signal no test sends.
        unsafe { libc::signal(libc::SIGWINCH, nothing as *const () as libc::sighandler_t) };
        assert_ne!(caught_signals() & (1 << (libc::SIGWINCH - 1)), 0);
        assert_ne!(caught_signals(), u64::MAX);
    }

    #[test]
    fn setup_runs_in_the_child_before_the_exec() {
        let args: Vec<String> = ["pwd"].map(String::from).into();
        let mut l = Launch::new("/bin/pwd", &args, &[], "");
        let dir = c"/tmp";
        // SAFETY: chdir with a NUL-terminated string; only the child runs it.
        let (code, out) = run(&mut l, &|| match unsafe { libc::chdir(dir.as_ptr()) } {
            0 => Ok(()),
            _ => Err(io::Error::last_os_error()),
        });
        assert_eq!((code, out.as_str()), (0, "/tmp\n"));
        assert_ne!(std::env::current_dir().unwrap(), std::path::Path::new("/tmp"));
    }

    #[test]
    fn failures_come_back_as_errors() {
        let (_r, w) = pipe();
        let args: Vec<String> = ["nope"].map(String::from).into();
        let mut l = Launch::new("nope", &args, &[], "/nonexistent:/also-not");
        l.stdio = [w.as_raw_fd(); 3];
        let e = l.start(&|| Ok(())).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
        let mut l = Launch::new("/bin/true", &args, &[], "");
        l.stdio = [w.as_raw_fd(); 3];
        let e = l.start(&|| Err(io::Error::from_raw_os_error(libc::EPERM))).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPERM));
    }

    #[test]
    fn a_file_without_a_known_format_runs_as_a_shell_script() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("script");
        std::fs::write(&script, "echo script $1\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let args: Vec<String> = ["script", "arg"].map(String::from).into();
        let mut l = Launch::new("script", &args, &[], dir.path().to_str().unwrap());
        let (code, out) = run(&mut l, &|| Ok(()));
        assert_eq!((code, out.as_str()), (0, "script arg\n"));
    }
}
