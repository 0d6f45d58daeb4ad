//! Processes the agent starts: spawned into a container (its cgroup, then chroot), their
//! stdio on pipes, on a pseudo-terminal of their own or on the serial console, their exits
//! kept until the container goes.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::unix::pipe;
use tokio::sync::watch;

use crate::child_steps::{ChildStep, ChildSteps};
use crate::exit::Exit;
use crate::launch::Launch;
use crate::reaper::Reaper;
use crate::security::Security;
use crate::terminal;

/// Used when a request gives no PATH.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What to run, already checked.
pub struct Spec {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: String,
    /// The container's root (chroot) and cgroup; `None` runs in the agent's own root.
    pub root: Option<PathBuf>,
    pub cgroup: Option<PathBuf>,
    pub stdin: bool,
    pub console: bool,
    /// On a new pseudo-terminal ([`crate::terminal`]) of this size (rows, columns) instead
    /// of pipes.
    pub terminal: Option<(u16, u16)>,
    /// The user and group it runs as (0 and 0: root, unchanged).
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// Capabilities, no_new_privs and a seccomp filter; `None`: the agent's own (all).
    pub security: Option<Security>,
    /// The PID namespace it starts in.
    pub pid_ns: PidNs,
    /// Paths under /proc its container masks and keeps read-only: applied again to the /proc
    /// a process starting a namespace mounts (the container's were on the guest's).
    pub proc_masked: Vec<String>,
    pub proc_readonly: Vec<String>,
}

/// Which PID namespace a process starts in.
#[derive(Clone, Debug, Default)]
pub enum PidNs {
    /// The agent's (the guest's).
    #[default]
    Agent,
    /// A new one, whose PID 1 it is; a fresh /proc is mounted in its root.
    New,
    /// The one this descriptor (`/proc/PID/ns/pid`) names.
    Join(Arc<OwnedFd>),
}

/// Makes the calling thread's next children start in the PID namespace `ns` names. Only that
/// thread: a namespace for children belongs to the thread, so the agent's others are unaffected.
fn join_for_children(ns: &OwnedFd) -> std::io::Result<()> {
    // SAFETY: setns with a descriptor that lives across the call.
    match unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWPID) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// The PID namespace process `pid` (as the agent numbers it) is in.
pub fn pid_namespace_of(pid: u32) -> std::io::Result<Arc<OwnedFd>> {
    let f = std::fs::File::open(format!("/proc/{pid}/ns/pid"))?;
    Ok(Arc::new(f.into()))
}

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("no command given")]
    NoCommand,
    #[error("a NUL byte in {0}")]
    Nul(&'static str),
    #[error("environment entry {0:?} is not NAME=VALUE")]
    BadEnv(String),
    #[error("starting {program}: {source}")]
    Start {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

impl Spec {
    pub fn new(
        args: Vec<String>,
        env: &[String],
        cwd: &str,
        stdin: bool,
        console: bool,
    ) -> Result<Spec, SpawnError> {
        if args.is_empty() || args[0].is_empty() {
            return Err(SpawnError::NoCommand);
        }
        if args.iter().any(|a| a.contains('\0')) {
            return Err(SpawnError::Nul("the arguments"));
        }
        let mut vars = Vec::new();
        for e in env {
            let (k, v) = e.split_once('=').ok_or_else(|| SpawnError::BadEnv(e.clone()))?;
            if k.is_empty() || e.contains('\0') {
                return Err(SpawnError::BadEnv(e.clone()));
            }
            vars.push((k.to_owned(), v.to_owned()));
        }
        if !vars.iter().any(|(k, _)| k == "PATH") {
            vars.push(("PATH".into(), DEFAULT_PATH.into()));
        }
        if cwd.contains('\0') {
            return Err(SpawnError::Nul("the working directory"));
        }
        let cwd = if cwd.is_empty() { "/".to_owned() } else { cwd.to_owned() };
        Ok(Spec {
            args,
            env: vars,
            cwd,
            root: None,
            cgroup: None,
            stdin,
            console,
            terminal: None,
            uid: 0,
            gid: 0,
            groups: Vec::new(),
            security: None,
            pid_ns: PidNs::Agent,
            proc_masked: Vec::new(),
            proc_readonly: Vec::new(),
        })
    }
}

/// Where the agent writes a process's input.
pub type Input = Box<dyn AsyncWrite + Send + Unpin>;
/// Where the agent reads a process's output.
pub type Output = Box<dyn AsyncRead + Send + Unpin>;

/// The agent's ends of a started process's stdio: pipes, or the master of its terminal.
pub struct Pipes {
    pub stdin: Option<Input>,
    pub stdout: Option<Output>,
    pub stderr: Option<Output>,
    /// The master of its terminal, kept for resizing.
    pub terminal: Option<OwnedFd>,
}

fn c(s: &Path) -> Result<CString, SpawnError> {
    CString::new(s.as_os_str().as_encoded_bytes()).map_err(|_| SpawnError::Nul("a path"))
}

fn receiver(fd: Option<impl Into<OwnedFd>>) -> std::io::Result<Option<Output>> {
    fd.map(|f| pipe::Receiver::from_owned_fd(f.into()).map(|r| Box::new(r) as Output)).transpose()
}

/// The master of a terminal as blocking-pool file I/O (a pty is no pipe for tokio's pipe
/// types), one descriptor for reading, one for writing.
fn terminal_ends(master: &OwnedFd, stdin: bool) -> std::io::Result<(Option<Input>, Output)> {
    let file = |fd: OwnedFd| tokio::fs::File::from_std(std::fs::File::from(fd));
    let input = if stdin { Some(Box::new(file(master.try_clone()?)) as Input) } else { None };
    Ok((input, Box::new(file(master.try_clone()?))))
}

/// A started process.
pub struct Started {
    pub pid: u32,
    pub pipes: Pipes,
    /// Its exit (the reaper sends it).
    pub exit: tokio::sync::oneshot::Receiver<Exit>,
    /// How long starting it took, step by step.
    pub steps: Vec<(&'static str, std::time::Duration)>,
}

/// Starts the process.
pub fn spawn(spec: &Spec, reaper: &Reaper) -> Result<Started, SpawnError> {
    let start_err = |source| SpawnError::Start { program: spec.args[0].clone(), source };
    let clock = ChildSteps::start().map_err(start_err)?;
    let path = spec.env.iter().find(|(k, _)| k == "PATH").map_or(DEFAULT_PATH, |(_, v)| v);
    let mut launch = Launch::new(&spec.args[0], &spec.args, &spec.env, path);
    // The child's stdio; the agent's ends are kept.
    let (stdio, ends): ([OwnedFd; 3], Ends) = if spec.console {
        let console = || std::fs::OpenOptions::new().read(true).write(true).open("/dev/console");
        let c = console().map_err(start_err)?;
        let stdio = [c.try_clone(), c.try_clone(), Ok(c)].map(|f| f.map(OwnedFd::from));
        (all_three(stdio).map_err(start_err)?, Ends::None)
    } else if let Some((rows, cols)) = spec.terminal {
        let (m, slave) = terminal::open().map_err(start_err)?;
        // Sized before the process runs: its first look (stty size) is right.
        terminal::resize(&m, rows, cols).map_err(start_err)?;
        let stdio = [slave.try_clone(), slave.try_clone(), Ok(slave)];
        (all_three(stdio).map_err(start_err)?, Ends::Terminal(m))
    } else {
        let (stdin, stdin_end) = if spec.stdin {
            let (r, w) = pipe().map_err(start_err)?;
            (r, Some(w))
        } else {
            let null = std::fs::OpenOptions::new().read(true).open("/dev/null");
            (null.map_err(start_err)?.into(), None)
        };
        let (stdout_end, stdout) = pipe().map_err(start_err)?;
        let (stderr_end, stderr) = pipe().map_err(start_err)?;
        ([stdin, stdout, stderr], Ends::Pipes { stdin: stdin_end, stdout_end, stderr_end })
    };
    launch.stdio = stdio.each_ref().map(|f| f.as_raw_fd());
    let root = spec.root.as_deref().map(c).transpose()?;
    let cwd = CString::new(spec.cwd.as_bytes()).map_err(|_| SpawnError::Nul("the cwd"))?;
    let procs = spec.cgroup.as_deref().map(|g| c(&g.join("cgroup.procs"))).transpose()?;
    let (console, on_terminal) = (spec.console, spec.terminal.is_some());
    let (uid, gid) = (spec.uid, spec.gid);
    let groups: &[libc::gid_t] = &spec.groups;
    let security = spec.security.as_ref();
    // A process that starts a namespace mounts the /proc that shows it, over the one the
    // container was made with (which shows the guest's).
    let new_proc = match (&spec.pid_ns, spec.root.as_deref()) {
        (PidNs::New, Some(root)) => {
            let under = |paths: &[String]| -> Result<Vec<CString>, SpawnError> {
                paths.iter().map(|p| c(&root.join(p.trim_start_matches('/')))).collect()
            };
            Some(ProcMount {
                dir: c(&root.join("proc"))?,
                masked: under(&spec.proc_masked)?,
                readonly: under(&spec.proc_readonly)?,
            })
        }
        _ => None,
    };
    // A console process joins the agent's session, which owns the console: were the process
    // the session leader, its exit would hang the terminal up, and a hangup discards what the
    // serial port has not sent yet (a shell's last words).
    let job_control = console && console_is_controlling_terminal();
    // Runs in the child between clone and exec: system calls only, on what is made above.
    let setup = || -> std::io::Result<()> {
        clock.stamp(ChildStep::Fork);
        // SAFETY: system calls on NUL-terminated strings and arrays made before the clone.
        unsafe {
            if console {
                // Its own process group, in the foreground of the console (^C reaches it).
                if libc::setpgid(0, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if job_control {
                    foreground(0)?;
                }
            } else if on_terminal {
                // A session of its own whose controlling terminal is its stdio.
                terminal::take_as_controlling()?;
            } else if libc::setsid() < 0 {
                // Its own session: signals to the agent's group never reach it.
                return Err(std::io::Error::last_os_error());
            }
            clock.stamp(ChildStep::Session);
            if let Some(procs) = &procs {
                // Writing 0 moves the writing process itself into the cgroup.
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(fd);
            }
            clock.stamp(ChildStep::Cgroup);
            if let Some(proc_mount) = &new_proc {
                proc_mount.mount()?;
            }
            clock.stamp(ChildStep::Proc);
            if let Some(root) = &root
                && libc::chroot(root.as_ptr()) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            if libc::chdir(cwd.as_ptr()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            clock.stamp(ChildStep::Root);
            // Privileges last: the chroot and the cgroup needed them.
            if let Some(s) = security {
                s.before_identity()?;
            }
            // Raw system calls: the libc wrappers would ask every thread of the agent, whose
            // memory the child shares, to change too, and wait for them forever.
            if (uid, gid, groups.is_empty()) != (0, 0, true)
                && (libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) != 0
                    || libc::syscall(libc::SYS_setgid, gid) != 0
                    || libc::syscall(libc::SYS_setuid, uid) != 0)
            {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(s) = security {
                s.after_identity(uid)?;
            }
        }
        clock.stamp(ChildStep::Identity);
        Ok(())
    };
    let start = |launch: &Launch| reaper.spawn(|| launch.start(&setup).map(|pid| (pid, pid)));
    let spawned = match &spec.pid_ns {
        PidNs::Agent => start(&launch),
        PidNs::New => {
            launch.new_pid_namespace = true;
            start(&launch)
        }
        // On a thread of its own, which alone enters the namespace for its children.
        PidNs::Join(ns) => std::thread::scope(|s| {
            s.spawn(|| join_for_children(ns).and_then(|()| start(&launch)))
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("the spawning thread panicked")))
        }),
    };
    let (pid, exit) = spawned.map_err(start_err)?;
    let steps = clock.finish();
    // The child's ends go: the agent sees the end of its output once the process closes them.
    drop(stdio);
    let pipes = match ends {
        Ends::Terminal(master) => {
            let (stdin, stdout) = terminal_ends(&master, spec.stdin).map_err(start_err)?;
            Pipes { stdin, stdout: Some(stdout), stderr: None, terminal: Some(master) }
        }
        Ends::Pipes { stdin, stdout_end, stderr_end } => Pipes {
            stdin: stdin
                .map(|f| pipe::Sender::from_owned_fd(f).map(|w| Box::new(w) as Input))
                .transpose()
                .map_err(start_err)?,
            stdout: receiver(Some(stdout_end)).map_err(start_err)?,
            stderr: receiver(Some(stderr_end)).map_err(start_err)?,
            terminal: None,
        },
        Ends::None => Pipes { stdin: None, stdout: None, stderr: None, terminal: None },
    };
    Ok(Started { pid: pid as u32, pipes, exit, steps })
}

/// The agent's ends of a process's stdio, before they become [`Pipes`].
enum Ends {
    /// On the console: nothing to keep.
    None,
    Terminal(OwnedFd),
    Pipes {
        stdin: Option<OwnedFd>,
        stdout_end: OwnedFd,
        stderr_end: OwnedFd,
    },
}

fn all_three([a, b, c]: [std::io::Result<OwnedFd>; 3]) -> std::io::Result<[OwnedFd; 3]> {
    Ok([a?, b?, c?])
}

/// A pipe whose ends are closed on exec: (read, write).
pub(crate) fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The /proc of a new PID namespace, mounted by its first process before it execs, with the
/// container's masks and read-only paths under it applied again. Only system calls on
/// strings made before the fork (it runs between fork and exec).
struct ProcMount {
    dir: CString,
    masked: Vec<CString>,
    readonly: Vec<CString>,
}

impl ProcMount {
    fn mount(&self) -> std::io::Result<()> {
        let check = |r: libc::c_int| {
            if r != 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
        };
        let none = std::ptr::null();
        // SAFETY: every pointer is a NUL-terminated string made before the fork, or null for
        // mount data; `st` is plain data lstat fills.
        unsafe {
            let proc_fs = c"proc";
            let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
            check(libc::mount(proc_fs.as_ptr(), self.dir.as_ptr(), proc_fs.as_ptr(), flags, none))?;
            for path in &self.masked {
                let mut st: libc::stat = std::mem::zeroed();
                if libc::lstat(path.as_ptr(), &mut st) != 0 {
                    continue;
                }
                match st.st_mode & libc::S_IFMT {
                    libc::S_IFLNK => continue,
                    libc::S_IFDIR => {
                        let tmpfs = c"tmpfs";
                        let flags = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV;
                        let data = c"size=0";
                        check(libc::mount(
                            tmpfs.as_ptr(),
                            path.as_ptr(),
                            tmpfs.as_ptr(),
                            flags,
                            data.as_ptr().cast(),
                        ))?;
                    }
                    _ => {
                        let null = c"/dev/null";
                        check(libc::mount(
                            null.as_ptr(),
                            path.as_ptr(),
                            none.cast(),
                            libc::MS_BIND,
                            none,
                        ))?;
                    }
                }
            }
            for path in &self.readonly {
                let mut st: libc::stat = std::mem::zeroed();
                if libc::lstat(path.as_ptr(), &mut st) != 0
                    || st.st_mode & libc::S_IFMT == libc::S_IFLNK
                {
                    continue;
                }
                check(libc::mount(
                    path.as_ptr(),
                    path.as_ptr(),
                    none.cast(),
                    libc::MS_BIND | libc::MS_REC,
                    none,
                ))?;
                let ro = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY;
                check(libc::mount(c"none".as_ptr(), path.as_ptr(), none.cast(), ro, none))?;
            }
        }
        Ok(())
    }
}

/// Makes the console the controlling terminal of the agent's session (the agent leads it as
/// PID 1); false if it cannot be, and console processes then run without job control.
fn console_is_controlling_terminal() -> bool {
    let Ok(console) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/console")
    else {
        return false;
    };
    use std::os::fd::AsRawFd;
    // SAFETY: an ioctl without a pointer argument on a descriptor that lives across the call;
    // it succeeds at once when the console already is this session's terminal.
    let r = unsafe { libc::ioctl(console.as_raw_fd(), libc::TIOCSCTTY, 0) };
    if r < 0 {
        tracing::warn!(
            "the console cannot be the session's terminal ({}); no job control",
            std::io::Error::last_os_error()
        );
    }
    r == 0
}

/// Puts the caller's process group in the foreground of the terminal on `fd`. Async-signal-safe
/// (it runs between fork and exec). SIGTTOU is held meanwhile: the caller asks from the
/// background.
fn foreground(fd: libc::c_int) -> std::io::Result<()> {
    // SAFETY: signal sets on the stack, initialised by sigemptyset before use; the calls
    // only read and write them.
    unsafe {
        let mut ttou: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut ttou);
        libc::sigaddset(&mut ttou, libc::SIGTTOU);
        libc::sigprocmask(libc::SIG_BLOCK, &ttou, &mut old);
        let r = libc::tcsetpgrp(fd, libc::getpgrp());
        let err = std::io::Error::last_os_error();
        libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        if r < 0 { Err(err) } else { Ok(()) }
    }
}

/// A process started by Exec, known by its exec id.
pub struct Process {
    pub pid: u32,
    pub container_id: String,
    pub stdin: tokio::sync::Mutex<Option<Input>>,
    /// The master of its terminal, when it runs on one.
    pub terminal: Option<OwnedFd>,
    /// `None` while it runs; its exit once it ended and its output was read to the end.
    pub exit: watch::Receiver<Option<Exit>>,
}

/// Every process started by Exec, running or ended, until its container is removed.
#[derive(Default)]
pub struct Processes {
    by_id: Mutex<HashMap<String, Arc<Process>>>,
}

impl Processes {
    pub fn get(&self, exec_id: &str) -> Option<Arc<Process>> {
        self.lock().get(exec_id).cloned()
    }

    /// Reserves an exec id; false if it is taken.
    pub fn insert(&self, exec_id: &str, p: Arc<Process>) -> bool {
        let mut m = self.lock();
        if m.contains_key(exec_id) {
            return false;
        }
        m.insert(exec_id.to_owned(), p);
        true
    }

    pub fn contains(&self, exec_id: &str) -> bool {
        self.lock().contains_key(exec_id)
    }

    pub fn running(&self) -> usize {
        self.lock().values().filter(|p| p.exit.borrow().is_none()).count()
    }

    /// Forgets the processes of a container (after it was torn down).
    pub fn forget_container(&self, container_id: &str) {
        self.lock().retain(|_, p| p.container_id != container_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Process>>> {
        self.by_id.lock().unwrap_or_else(|e| e.into_inner())
    }
}
