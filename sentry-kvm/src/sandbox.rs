//! A sandbox: one VM and one kernel, holding one or more containers (process trees, each with
//! its own root filesystem served by its own Gofer). `ringfence sentry run` makes the program
//! itself the sandbox's init; a pod sandbox has a built-in pause process as init and gets its
//! containers later through the control server.

use crate::sync::Mutex;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;

use crate::abi::Errno;
use crate::abi::signal::{SI_USER, SIG_IGN, SIGCHLD, SigAction, SigInfo};
use crate::abi::stat::{FileType, O_RDONLY, O_RDWR, O_WRONLY};
use crate::abi::termios::Winsize;
use crate::control::protocol::{FileSpec, Process, TerminalSize};
use crate::creds::Credentials;
use crate::gofer::GoferClient;
use crate::kernel::fs_context::FsContext;
use crate::kernel::pid::ProcInfo;
use crate::kernel::pid_ns::PidNamespace;
use crate::kernel::signal::SigHandlers;
use crate::kernel::signal::send::{Origin, send_to_group};
use crate::kernel::task::Task;
use crate::kernel::thread_group::{ExitStatus, ThreadGroup, default_rlimits};
use crate::kernel::tty::host_relay;
use crate::kernel::tty::pty::PtyMaster;
use crate::kernel::{Kernel, KernelInfo, exec, run};
use crate::mm::PAGE_SIZE;
use crate::mm::address_space::{MapRequest, MemoryManager};
use crate::mm::vma::Prot;
use crate::platform::kvm::{Machine, layout};
use crate::platform::systrap::Systrap;
use crate::platform::{Cpu, Platform, PlatformKind, UserContext};
use crate::vfs::Location;
use crate::vfs::fd_table::FdTable;
use crate::vfs::file::File;
use crate::vfs::fs::dev;
use crate::vfs::fs::host::HostFile;
use crate::vfs::fs::overlay::OverlayFs;
use crate::vfs::fs::volume::VolumeFs;
use crate::vfs::inode::{Inode, Owner};
use crate::vfs::mount::Mount;
use crate::vfs::path::{Last, Resolver};

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What a sandbox is made of, whatever runs in it.
pub struct SandboxConfig {
    pub memory: u64,
    pub hostname: String,
    pub network: Network,
    /// System V IPC limits (the pod's kernel.shm*, kernel.msg* and kernel.sem sysctls).
    pub ipc: crate::kernel::ipc::limits::IpcLimits,
    /// Where application code runs.
    pub platform: crate::platform::PlatformKind,
}

/// Where the sandbox's AF_INET/AF_INET6 sockets live.
#[derive(Clone, Debug)]
pub enum Network {
    /// A new network namespace with only loopback.
    Isolated,
    /// An existing network namespace (a pod network set up by the node agent).
    Namespace(PathBuf),
    /// The namespace `ringfence` itself runs in.
    Host,
}

/// A host directory mounted at `destination` in a container, served by its own Gofer.
pub struct Volume {
    pub gofer: GoferClient,
    pub destination: String,
    pub read_only: bool,
}

/// One container: a program over a root filesystem, with its stdio.
pub struct ContainerSpec {
    /// Serves the container's root filesystem (already started: the Sentry cannot start
    /// processes once confined).
    pub gofer: GoferClient,
    /// argv[0] names the program (absolute, or searched in PATH); PATH gets a default.
    pub process: Process,
    /// Files placed in the container's writable layer before it starts.
    pub files: Vec<FileSpec>,
    /// Host directories mounted into the container.
    pub volumes: Vec<Volume>,
    /// Host descriptors for stdin, stdout and stderr.
    pub stdio: [OwnedFd; 3],
    /// Read-only root, masked and read-only paths.
    pub rootfs: RootfsPolicy,
    /// The PID namespace its process starts in (from [`Sandbox::pid_namespace`]); None: the
    /// sandbox's root one, shared with the pod.
    pub pidns: Option<Arc<PidNamespace>>,
}

/// How a container's filesystem is restricted (OCI `root.readonly`, `linux.maskedPaths`,
/// `linux.readonlyPaths`).
#[derive(Clone, Debug, Default)]
pub struct RootfsPolicy {
    pub read_only: bool,
    pub masked_paths: Vec<String>,
    pub readonly_paths: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(transparent)]
    Platform(#[from] crate::platform::PlatformError),
    #[error("setting up the sandbox filesystem: {0}")]
    Filesystem(Errno),
    #[error("cannot execute {path}: {errno}")]
    Exec { path: String, errno: Errno },
    #[error("starting a task: {0}")]
    Thread(std::io::Error),
    #[error("setting up the sandbox network namespace: {0}")]
    Network(Errno),
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    #[error("the process's seccomp profile: {0}")]
    Profile(#[from] crate::kernel::seccomp::oci::ProfileError),
    #[error("the sandbox has no init process yet")]
    NoInit,
    #[error("the PID namespace has ended: its init process has exited")]
    PidNamespaceGone,
}

/// A running sandbox.
pub struct Sandbox {
    pub kernel: Arc<Kernel>,
    platform: PlatformKind,
    init: Mutex<Option<Arc<ThreadGroup>>>,
}

fn mkdir_p(dir: &Arc<dyn Inode>, name: &[u8]) -> Result<Arc<dyn Inode>, Errno> {
    match dir.lookup(name) {
        Ok(i) if i.file_type() == FileType::Directory => Ok(i),
        Ok(_) => Err(Errno::ENOTDIR),
        Err(Errno::ENOENT) => dir.create(name, FileType::Directory, 0o755, 0, Owner::default()),
        Err(e) => Err(e),
    }
}

/// The directory at absolute `path` under `root`, made with its parents as needed.
fn mkdir_path(root: &Arc<dyn Inode>, path: &str) -> Result<Arc<dyn Inode>, Errno> {
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    if !path.starts_with('/') || comps.is_empty() || comps.contains(&"..") {
        return Err(Errno::EINVAL);
    }
    let mut dir = root.clone();
    for c in comps {
        dir = mkdir_p(&dir, c.as_bytes())?;
    }
    Ok(dir)
}

/// Creates (or replaces) a regular file at `path` under `root`, with its directories.
fn put_file(root: &Arc<dyn Inode>, path: &str, data: &[u8], mode: u32) -> Result<(), Errno> {
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    let (last, dirs) = comps.split_last().ok_or(Errno::EINVAL)?;
    if comps.contains(&"..") {
        return Err(Errno::EINVAL);
    }
    let mut dir = root.clone();
    for d in dirs {
        dir = mkdir_p(&dir, d.as_bytes())?;
    }
    let file = match dir.lookup(last.as_bytes()) {
        Ok(f) if f.file_type() == FileType::Regular => f,
        Ok(_) => {
            dir.unlink(last.as_bytes())?;
            dir.create(last.as_bytes(), FileType::Regular, mode, 0, Owner::default())?
        }
        Err(_) => dir.create(last.as_bytes(), FileType::Regular, mode, 0, Owner::default())?,
    };
    file.replace_contents(data)
}

/// `loop: pause(); goto loop` — the whole of a pod sandbox's init.
const PAUSE_CODE: [u8; 9] = [0xb8, 34, 0, 0, 0, 0x0f, 0x05, 0xeb, 0xf7];
const PAUSE_ADDR: u64 = 0x40_0000;

impl Sandbox {
    /// Creates the VM and kernel; nothing runs yet.
    pub fn boot(config: &SandboxConfig) -> Result<Arc<Sandbox>, SandboxError> {
        match &config.network {
            Network::Isolated => {
                crate::kernel::netns::enter_new().map_err(SandboxError::Network)?
            }
            Network::Namespace(p) => {
                crate::kernel::netns::enter_path(p).map_err(SandboxError::Network)?
            }
            Network::Host => {}
        }
        let (platform, clean_fpu, time): (Arc<dyn Platform>, _, _) = match config.platform {
            PlatformKind::Kvm => {
                let machine = Machine::new(config.memory)?;
                let mut v = machine.acquire_vcpu()?;
                let x = v.get_fpu()?;
                let time =
                    crate::platform::kvm::tsc::probe(machine.phys(), &mut v).unwrap_or_else(|e| {
                        tracing::warn!("TSC probe failed ({e}): clock reads use syscalls");
                        crate::platform::kvm::tsc::TimeProbe::NONE
                    });
                machine.release_vcpu(v);
                (machine, x, time)
            }
            PlatformKind::Systrap => (
                Systrap::new(config.memory)?,
                crate::platform::systrap::clean_fpu(),
                crate::platform::systrap::time_probe(),
            ),
        };
        // The sandbox's own root: a tmpfs, seen only by the pause init.
        let tmpfs = OverlayFs::new(platform.phys().clone(), None);
        let root_inode: Arc<dyn Inode> = tmpfs.root(0o755);
        let root =
            Location::new(Mount::new_root(root_inode, "tmpfs", "sandbox"), tmpfs.root(0o755));
        // SAFETY: sysconf has no preconditions.
        let host_cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as u32;
        let info = KernelInfo {
            hostname: config.hostname.clone().into_bytes(),
            release: "6.1.0-ringfence",
            version: "#1 SMP PREEMPT_DYNAMIC",
            cpus: host_cpus,
            mem_bytes: config.memory,
            nofile: crate::vfs::fd_table::host_nofile(),
            ipc: config.ipc,
        };
        let kernel = Kernel::new(platform, root, info, clean_fpu, time);
        Ok(Arc::new(Sandbox { kernel, platform: config.platform, init: Mutex::new(None) }))
    }

    /// A container's root: an overlay on its Gofer's rootfs with /proc, /dev, /dev/shm, /dev/pts.
    fn container_root(
        &self,
        gofer: GoferClient,
        files: &[FileSpec],
        volumes: Vec<Volume>,
        policy: &RootfsPolicy,
    ) -> Result<Location, SandboxError> {
        let fs_err = SandboxError::Filesystem;
        let phys = self.kernel.phys.clone();
        let overlay = OverlayFs::new(phys.clone(), Some(Arc::new(gofer)));
        let root_inode: Arc<dyn Inode> = overlay.root(0o755);
        // Named as container runtimes name it ("rootfs" is what df tools skip as the initramfs).
        let mount =
            Mount::new_root_with(root_inode.clone(), "overlay", "overlay", policy.read_only);
        let proc_dir = mkdir_p(&root_inode, b"proc").map_err(fs_err)?;
        mount.mount_child(proc_dir, crate::kernel::procfs::build(&self.kernel), "proc", "proc");
        let dev_dir = mkdir_p(&root_inode, b"dev").map_err(fs_err)?;
        let devpts = &self.kernel.devpts;
        let (devfs, shm, pts) = dev::build(vec![(b"tty".to_vec(), devpts.tty_node())]);
        let dev_mount = mount.mount_child(dev_dir, devfs, "tmpfs", "dev");
        dev_mount.mount_child(shm, OverlayFs::new(phys.clone(), None).root(0o1777), "tmpfs", "shm");
        dev_mount.mount_child(pts, devpts.root(), "devpts", "devpts");
        mkdir_p(&root_inode, b"tmp").map_err(fs_err)?;
        for f in files {
            put_file(&root_inode, &f.path, f.contents.as_bytes(), f.mode)
                .map_err(|errno| SandboxError::Exec { path: f.path.clone(), errno })?;
        }
        for v in volumes {
            let on = mkdir_path(&root_inode, &v.destination)
                .map_err(|errno| SandboxError::Exec { path: v.destination.clone(), errno })?;
            let fs = VolumeFs::new(phys.clone(), v.gofer, v.read_only);
            mount.mount_volume(on, fs.root(), v.read_only, &v.destination);
        }
        let root = Location::new(mount, root_inode);
        crate::vfs::restrict::apply(&root, &phys, &policy.masked_paths, &policy.readonly_paths)
            .map_err(fs_err)?;
        Ok(root)
    }

    /// Creates the process structures of a new thread group; returns its first task.
    fn new_process(
        &self,
        parent: i32,
        root: Location,
        files: Arc<FdTable>,
        creds: Credentials,
        init: bool,
        ns: Option<Arc<PidNamespace>>,
    ) -> Result<(Arc<Task>, Arc<ThreadGroup>), SandboxError> {
        let kernel = &self.kernel;
        let handlers = Arc::new(Mutex::new(SigHandlers::default()));
        let mut tasks = kernel.tasks();
        let ns = ns.unwrap_or_else(|| tasks.root_ns.clone());
        let tgid = tasks.alloc_id(&ns).map_err(|e| match e {
            Errno::ENOMEM => SandboxError::PidNamespaceGone,
            e => SandboxError::Filesystem(e),
        })?;
        if init != (tgid == 1) {
            return Err(if init {
                SandboxError::Filesystem(Errno::EEXIST)
            } else {
                SandboxError::NoInit
            });
        }
        let first = tasks.init_of(&ns) == Some(tgid);
        let tg = ThreadGroup::new(tgid, handlers, default_rlimits(kernel.info().nofile), ns);
        if first {
            tg.set_ns_init();
        }
        let mm = Arc::new(
            MemoryManager::new(kernel.phys.clone(), layout::KERNEL_PDPT)
                .map_err(SandboxError::Filesystem)?,
        );
        let task = Task::new(
            tgid,
            kernel.clone(),
            tg.clone(),
            mm,
            FsContext::new(root),
            files,
            Arc::new(creds),
            Default::default(),
            b"init".to_vec(),
        );
        tasks.threads.insert(tgid, task.clone());
        let (pgid, sid) = (tgid, tgid);
        tasks.procs.insert(
            tgid,
            ProcInfo { tg: tg.clone(), parent, children: Default::default(), pgid, sid },
        );
        if let Some(p) = tasks.proc_mut(parent) {
            p.children.insert(tgid);
        }
        drop(tasks);
        tg.lock().threads.push(task.clone());
        Ok((task, tg))
    }

    /// Loads a program into `task` and starts it.
    fn start_program(
        &self,
        task: Arc<Task>,
        argv: &[String],
        env: &[String],
        cwd: &str,
    ) -> Result<(), SandboxError> {
        let root = task.fs().root();
        let resolver = Resolver { ctx: &*task, root: root.clone(), start: root.clone() };
        let cwd_loc = resolver
            .resolve(cwd.as_bytes(), Last::Follow)
            .map_err(|errno| SandboxError::Exec { path: cwd.to_string(), errno })?;
        task.fs().lock().cwd = cwd_loc.clone();
        let cwd = cwd_loc;
        let user_env = env;
        let mut env: Vec<Vec<u8>> = Vec::new();
        if !user_env.iter().any(|e| e.starts_with("PATH=")) {
            env.push(format!("PATH={DEFAULT_PATH}").into_bytes());
        }
        env.extend(user_env.iter().map(|e| e.clone().into_bytes()));
        let path_var = env
            .iter()
            .rev()
            .find_map(|e| e.strip_prefix(b"PATH=").map(|p| p.to_vec()))
            .unwrap_or_else(|| DEFAULT_PATH.as_bytes().to_vec());
        let program = argv.first().cloned().unwrap_or_default();
        let argv: Vec<Vec<u8>> = argv.iter().map(|a| a.clone().into_bytes()).collect();
        let exec_err = |errno| SandboxError::Exec { path: program.clone(), errno };
        let path = find_program(&task, &cwd, program.as_bytes(), &path_var).map_err(exec_err)?;
        let prepared = exec::prepare(&task, &cwd, &path, argv, env).map_err(exec_err)?;
        let ctx = exec::commit(&task, prepared);
        run::spawn(task, ctx, None).map_err(SandboxError::Thread)
    }

    fn stdio_files(&self, stdio: [OwnedFd; 3]) -> Result<Arc<FdTable>, SandboxError> {
        let files = FdTable::new(self.kernel.locks.clone());
        for (fd, (host, flags)) in stdio.into_iter().zip([O_RDONLY, O_WRONLY, O_WRONLY]).enumerate()
        {
            let host = HostFile::new(host);
            let name = host.name().to_vec();
            let file = File::new(host, flags, None, name);
            files.install_at(fd as i32, file, false, 1024).map_err(SandboxError::Filesystem)?;
        }
        Ok(files)
    }

    /// Descriptors 0, 1 and 2 on the slave of a new pty (one open file, as a terminal
    /// emulator leaves them); returns its master too.
    fn terminal_files(
        &self,
        size: TerminalSize,
    ) -> Result<(Arc<FdTable>, Arc<PtyMaster>), SandboxError> {
        let (master, slave) = self.kernel.devpts.open_pair().map_err(SandboxError::Filesystem)?;
        let pty = slave.pty().clone();
        // Sized before the process runs: its first look (stty size) is right.
        pty.set_winsize(Winsize { rows: size.rows, cols: size.cols, ..Default::default() });
        let file = File::new(slave, O_RDWR, None, pty.slave_path());
        let files = FdTable::new(self.kernel.locks.clone());
        for fd in 0..3 {
            files.install_at(fd, file.clone(), false, 1024).map_err(SandboxError::Filesystem)?;
        }
        Ok((files, master))
    }

    /// Starts `p` as a new process (and session) with root `root`: init, or a child of init.
    /// With `p.terminal`, its stdio is a new pty, its session's controlling terminal, relayed
    /// to the host's stdin and stdout (stderr goes unused, as with any terminal).
    fn launch(
        &self,
        root: Location,
        p: &Process,
        stdio: [OwnedFd; 3],
        init: bool,
        ns: Option<Arc<PidNamespace>>,
    ) -> Result<Arc<ThreadGroup>, SandboxError> {
        let filter = p.seccomp.as_ref().map(|s| s.compile()).transpose()?;
        let (files, terminal, stdio) = if let Some(size) = p.terminal {
            let (files, master) = self.terminal_files(size)?;
            let [stdin, stdout, _] = stdio;
            (files, Some(master), Some((stdin, stdout)))
        } else {
            (self.stdio_files(stdio)?, None, None)
        };
        let creds = Credentials::user(p.uid, p.gid, p.groups.clone(), p.capabilities);
        let parent = if init { 0 } else { 1 };
        let (task, tg) = self.new_process(parent, root, files, creds, init, ns)?;
        task.no_new_privs.store(p.no_new_privs, std::sync::atomic::Ordering::SeqCst);
        if let Some(prog) = filter
            && let Err(errno) = crate::kernel::seccomp::install(&task, prog)
        {
            self.discard(&task, &tg);
            return Err(SandboxError::Filesystem(errno));
        }
        if init {
            *self.init.lock().unwrap_or_else(|e| e.into_inner()) = Some(tg.clone());
        }
        if let Some(master) = &terminal {
            // The process leads a new session: the pty becomes its controlling terminal.
            master.pty().attach_session(tg.tgid, tg.tgid);
        }
        if let Err(e) = self.start_program(task.clone(), &p.argv, &p.env, &p.cwd) {
            self.discard(&task, &tg);
            return Err(e);
        }
        if let (Some(master), Some((stdin, stdout))) = (terminal, stdio) {
            host_relay::spawn(master, stdin, stdout, tg.clone()).map_err(SandboxError::Thread)?;
        }
        Ok(tg)
    }

    /// Undoes `new_process` for a process that never ran: nothing of it must linger (its
    /// descriptors hold the caller's pipes).
    fn discard(&self, task: &Arc<Task>, tg: &Arc<ThreadGroup>) {
        drop(task.files().clear());
        let mut tasks = self.kernel.tasks();
        tasks.threads.remove(&tg.tgid);
        if let Some(p) = tasks.procs.remove(&tg.tgid)
            && let Some(parent) = tasks.proc_mut(p.parent)
        {
            parent.children.remove(&tg.tgid);
        }
        drop(tasks);
        tg.lock().threads.clear();
        tg.set_zombie(ExitStatus::Exited(127));
    }

    /// Makes the container's program the sandbox's init (`ringfence sentry run`).
    pub fn run_as_init(&self, spec: ContainerSpec) -> Result<Arc<ThreadGroup>, SandboxError> {
        let root = self.container_root(spec.gofer, &spec.files, spec.volumes, &spec.rootfs)?;
        self.launch(root, &spec.process, spec.stdio, true, None)
    }

    /// Starts the built-in pause process as init (pod sandboxes): it reaps orphans and never
    /// exits by itself.
    pub fn run_pause_init(&self) -> Result<(), SandboxError> {
        let null = || -> Result<OwnedFd, SandboxError> {
            std::fs::File::open("/dev/null").map(OwnedFd::from).map_err(SandboxError::Thread)
        };
        let files = self.stdio_files([null()?, null()?, null()?])?;
        let root = self.kernel.root.clone();
        let (task, tg) = self.new_process(0, root, files, Credentials::root(), true, None)?;
        // Children are reaped automatically; their exit is still observable through their
        // thread groups.
        let ign = SigAction { handler: SIG_IGN, ..Default::default() };
        tg.handlers().lock().unwrap_or_else(|e| e.into_inner()).set(SIGCHLD, ign);
        *task.comm.lock().unwrap_or_else(|e| e.into_inner()) = b"pause".to_vec();
        let mm = task.mm();
        let fs_err = SandboxError::Filesystem;
        let mut code = MapRequest::anon(PAGE_SIZE, Prot::RX);
        code.addr = PAUSE_ADDR;
        code.fixed = true;
        mm.mmap(code).map_err(fs_err)?;
        mm.mprotect(PAUSE_ADDR, PAGE_SIZE, Prot::RW).map_err(fs_err)?;
        mm.copy_out(PAUSE_ADDR, &PAUSE_CODE).map_err(fs_err)?;
        mm.mprotect(PAUSE_ADDR, PAGE_SIZE, Prot::RX).map_err(fs_err)?;
        let mut ctx = UserContext { cr3: mm.root().0, ..Default::default() };
        ctx.regs.rip = PAUSE_ADDR;
        ctx.regs.rflags = 0x202;
        *self.init.lock().unwrap_or_else(|e| e.into_inner()) = Some(tg);
        run::spawn(task, ctx, None).map_err(SandboxError::Thread)
    }

    /// Starts a container as a new process (and session) under init. Returns its process.
    pub fn start_container(&self, spec: ContainerSpec) -> Result<Arc<ThreadGroup>, SandboxError> {
        let root = self.container_root(spec.gofer, &spec.files, spec.volumes, &spec.rootfs)?;
        self.launch(root, &spec.process, spec.stdio, false, spec.pidns)
    }

    /// A new PID namespace for a container of its own (below the sandbox's root one).
    pub fn pid_namespace(&self) -> Result<Arc<PidNamespace>, SandboxError> {
        let root = self.kernel.tasks().root_ns.clone();
        root.new_child().map_err(SandboxError::Filesystem)
    }

    /// Starts `p` in the root filesystem and PID namespace of the container whose main
    /// process is `main`.
    pub fn exec_in(
        &self,
        main: &ThreadGroup,
        p: &Process,
        stdio: [OwnedFd; 3],
    ) -> Result<Arc<ThreadGroup>, SandboxError> {
        let root = main.leader().ok_or(SandboxError::NoInit)?.fs().root();
        self.launch(root, p, stdio, false, Some(main.pidns.clone()))
    }

    /// CPU time, resident memory and process count of the container whose main process is
    /// `main` (every process sharing its root filesystem).
    pub fn stats(&self, main: &ThreadGroup) -> (u64, u64, u32) {
        let Some(leader) = main.leader() else { return (0, 0, 0) };
        let mount = leader.fs().root().mount.id;
        let groups: Vec<Arc<ThreadGroup>> =
            self.kernel.tasks().procs.values().map(|p| p.tg.clone()).collect();
        let (mut cpu, mut mem, mut n) = (0, 0, 0);
        for tg in groups {
            let Some(t) = tg.leader() else { continue };
            if t.fs().root().mount.id != mount {
                continue;
            }
            n += 1;
            // Two statements: `threads()` takes the group's lock, which must not be held here.
            let exited_us = tg.lock().usage.user_us;
            cpu += exited_us + tg.threads().iter().map(|t| t.cpu_us()).sum::<u64>();
            mem += t.mm().resident_pages() * PAGE_SIZE;
        }
        (cpu, mem, n)
    }

    /// Pauses (`true`) or resumes the container whose main process is `main`: see
    /// [`crate::kernel::freezer`]. False if it already was in that state.
    pub fn freeze(&self, main: &ThreadGroup, frozen: bool) -> bool {
        let Some(leader) = main.leader() else { return false };
        let root = leader.fs().root().mount.id;
        let freezer = &self.kernel.freezer;
        if !frozen {
            return freezer.thaw(root);
        }
        if !freezer.freeze(root) {
            return false;
        }
        let groups: Vec<Arc<ThreadGroup>> =
            self.kernel.tasks().procs.values().map(|p| p.tg.clone()).collect();
        for tg in groups {
            if tg.leader().is_some_and(|t| t.fs().root().mount.id == root) {
                for t in tg.threads() {
                    t.interrupt();
                }
            }
        }
        true
    }

    /// What every task is doing (see [`crate::kernel::task_dump`]); never blocks.
    pub fn task_dump(&self) -> String {
        crate::kernel::task_dump::dump(&self.kernel)
    }

    /// Blocks until init exits; returns its status.
    pub fn wait(&self) -> ExitStatus {
        self.kernel.wait_done()
    }

    /// Delivers a signal from the host to init (e.g. a forwarded SIGTERM).
    pub fn signal(&self, sig: u32) {
        if let Some(init) = self.init.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            signal_process(&init, sig);
        }
    }

    /// Confines every thread of the Sentry process: from here on it opens no host files and
    /// starts no processes.
    pub fn confine(&self) -> Result<(), SandboxError> {
        crate::seccomp::confine_sentry(self.platform)?;
        Ok(())
    }
}

/// Delivers `sig` from the host to a process of the sandbox.
pub fn signal_process(tg: &Arc<ThreadGroup>, sig: u32) {
    send_to_group(tg, SigInfo { signo: sig, code: SI_USER, ..Default::default() }, Origin::Host);
}

/// Resolves the program name: paths containing `/` as given, bare names through PATH.
fn find_program(task: &Task, cwd: &Location, name: &[u8], path: &[u8]) -> Result<Vec<u8>, Errno> {
    if name.is_empty() {
        return Err(Errno::ENOENT);
    }
    if name.contains(&b'/') {
        return Ok(name.to_vec());
    }
    let root = task.fs().root();
    for dir in path.split(|&b| b == b':').filter(|d| !d.is_empty()) {
        let mut candidate = dir.to_vec();
        candidate.push(b'/');
        candidate.extend_from_slice(name);
        let r = Resolver { ctx: task, root: root.clone(), start: cwd.clone() };
        if let Ok(loc) = r.resolve(&candidate, Last::Follow)
            && loc.inode.file_type() == FileType::Regular
        {
            return Ok(candidate);
        }
    }
    Err(Errno::ENOENT)
}
