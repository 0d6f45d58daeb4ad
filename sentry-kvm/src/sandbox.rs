//! A sandbox: the Gofer, the VM, the kernel with its mounts, and the init process.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::abi::Errno;
use crate::abi::stat::{FileType, O_RDONLY, O_WRONLY};
use crate::gofer::GoferClient;
use crate::kernel::creds::Credentials;
use crate::kernel::fs_context::FsContext;
use crate::kernel::pid::ProcInfo;
use crate::kernel::signal::SigHandlers;
use crate::kernel::signal::send::{Origin, send_to_group};
use crate::kernel::task::Task;
use crate::kernel::thread_group::{ExitStatus, ThreadGroup, default_rlimits};
use crate::kernel::{Kernel, KernelInfo, exec, run};
use crate::mm::address_space::MemoryManager;
use crate::platform::kvm::{Machine, layout};
use crate::vfs::Location;
use crate::vfs::fd_table::FdTable;
use crate::vfs::file::File;
use crate::vfs::fs::host::HostFile;
use crate::vfs::fs::overlay::OverlayFs;
use crate::vfs::fs::{dev, proc};
use crate::vfs::inode::{Inode, Owner};
use crate::vfs::mount::Mount;
use crate::vfs::path::{Last, Resolver};

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Everything needed to start a sandbox.
pub struct SandboxConfig {
    /// Host directory served (read-only) as the root filesystem.
    pub rootfs: PathBuf,
    /// argv; argv[0] names the program (absolute, or searched in PATH).
    pub argv: Vec<String>,
    /// KEY=VALUE; PATH gets a default if absent.
    pub env: Vec<String>,
    pub cwd: String,
    pub memory: u64,
    pub hostname: String,
    /// Executable and leading arguments that start the Gofer (it is passed `--root DIR`).
    pub gofer_command: (PathBuf, Vec<String>),
    /// Host descriptors for the init process's stdin, stdout and stderr.
    pub stdio: [OwnedFd; 3],
    pub network: Network,
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

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("starting the gofer for {path}: {source}")]
    Gofer { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Platform(#[from] crate::platform::PlatformError),
    #[error("setting up the sandbox filesystem: {0}")]
    Filesystem(Errno),
    #[error("cannot execute {path}: {errno}")]
    Exec { path: String, errno: Errno },
    #[error("starting the init task: {0}")]
    Thread(std::io::Error),
    #[error("setting up the sandbox network namespace: {0}")]
    Network(Errno),
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
}

/// A running sandbox.
pub struct Sandbox {
    pub kernel: Arc<Kernel>,
    init: Arc<ThreadGroup>,
}

fn mkdir_p(root: &Arc<dyn Inode>, name: &[u8]) -> Result<Arc<dyn Inode>, Errno> {
    match root.lookup(name) {
        Ok(i) if i.file_type() == FileType::Directory => Ok(i),
        Ok(_) => Err(Errno::ENOTDIR),
        Err(Errno::ENOENT) => root.create(name, FileType::Directory, 0o755, 0, Owner::default()),
        Err(e) => Err(e),
    }
}

impl Sandbox {
    pub fn start(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
        let (gofer_exe, gofer_args) = &config.gofer_command;
        let args: Vec<&str> = gofer_args.iter().map(String::as_str).collect();
        let gofer = GoferClient::spawn(gofer_exe, &args, &config.rootfs)
            .map_err(|source| SandboxError::Gofer { path: config.rootfs.clone(), source })?;
        let gofer = Arc::new(gofer);

        match &config.network {
            Network::Isolated => {
                crate::kernel::netns::enter_new().map_err(SandboxError::Network)?
            }
            Network::Namespace(p) => {
                crate::kernel::netns::enter_path(p).map_err(SandboxError::Network)?
            }
            Network::Host => {}
        }
        let machine = Machine::new(config.memory)?;
        let clean_fpu = {
            let v = machine.acquire_vcpu()?;
            let x = v.get_xsave()?;
            machine.release_vcpu(v);
            x
        };
        let phys = machine.phys().clone();
        let fsys = OverlayFs::new(phys.clone(), Some(gofer.clone()));
        let root_inode: Arc<dyn Inode> = fsys.root(0o755);
        let root_mount = Mount::new_root(root_inode.clone(), "overlay", "rootfs");
        let root = Location::new(root_mount.clone(), root_inode.clone());
        // SAFETY: sysconf has no preconditions.
        let host_cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as u32;
        let info = KernelInfo {
            hostname: config.hostname.clone().into_bytes(),
            release: "6.1.0-ringfence",
            version: "#1 SMP PREEMPT_DYNAMIC",
            cpus: host_cpus,
            mem_bytes: config.memory,
        };
        let kernel = Kernel::new(machine, root.clone(), info, Some(gofer), clean_fpu);

        // /proc, /dev and /dev/shm.
        let fs_err = SandboxError::Filesystem;
        let proc_dir = mkdir_p(&root_inode, b"proc").map_err(fs_err)?;
        let procfs: Arc<dyn Inode> = proc::build(&kernel);
        root_mount.mount_child(proc_dir, procfs, "proc", "proc");
        let dev_dir = mkdir_p(&root_inode, b"dev").map_err(fs_err)?;
        let (devfs, shm, _pts) = dev::build();
        let dev_mount = root_mount.mount_child(dev_dir, devfs, "tmpfs", "dev");
        let shmfs = OverlayFs::new(phys, None);
        dev_mount.mount_child(shm, shmfs.root(0o1777), "tmpfs", "shm");
        mkdir_p(&root_inode, b"tmp").map_err(fs_err)?;

        // The init process.
        let handlers = Arc::new(Mutex::new(SigHandlers::default()));
        let tg = ThreadGroup::new(1, handlers, default_rlimits());
        let mm =
            Arc::new(MemoryManager::new(kernel.phys.clone(), layout::KERNEL_PDPT).map_err(fs_err)?);
        let files = FdTable::new();
        let [stdin, stdout, stderr] = config.stdio;
        for (fd, (host, flags)) in
            [(stdin, O_RDONLY), (stdout, O_WRONLY), (stderr, O_WRONLY)].into_iter().enumerate()
        {
            let name = format!("host:[{fd}]").into_bytes();
            let file = File::new(HostFile::new(host), flags, None, name);
            files.install_at(fd as i32, file, false, 1024).map_err(fs_err)?;
        }
        let fsctx = FsContext::new(root.clone());
        let task = Task::new(
            1,
            kernel.clone(),
            tg.clone(),
            mm,
            fsctx.clone(),
            files,
            Arc::new(Credentials::root()),
            Default::default(),
            b"init".to_vec(),
        );
        {
            let mut t = kernel.tasks();
            let _ = t.alloc_id();
            t.threads.insert(1, task.clone());
            t.procs.insert(
                1,
                ProcInfo {
                    tg: tg.clone(),
                    parent: 0,
                    children: Default::default(),
                    pgid: 1,
                    sid: 1,
                },
            );
        }
        tg.lock().threads.push(task.clone());

        let resolver = Resolver { task: &task, root: root.clone(), start: root.clone() };
        let cwd = resolver
            .resolve(config.cwd.as_bytes(), Last::Follow)
            .map_err(|errno| SandboxError::Exec { path: config.cwd.clone(), errno })?;
        fsctx.lock().cwd = cwd.clone();

        let mut env: Vec<Vec<u8>> = Vec::new();
        if !config.env.iter().any(|e| e.starts_with("PATH=")) {
            env.push(format!("PATH={DEFAULT_PATH}").into_bytes());
        }
        env.extend(config.env.iter().map(|e| e.clone().into_bytes()));
        let path_var = env
            .iter()
            .rev()
            .find_map(|e| e.strip_prefix(b"PATH=").map(|p| p.to_vec()))
            .unwrap_or_else(|| DEFAULT_PATH.as_bytes().to_vec());
        let program = config.argv.first().cloned().unwrap_or_default();
        let argv: Vec<Vec<u8>> = config.argv.iter().map(|a| a.clone().into_bytes()).collect();
        let exec_err = |errno| SandboxError::Exec { path: program.clone(), errno };
        let path = find_program(&task, &cwd, program.as_bytes(), &path_var).map_err(exec_err)?;
        let prepared = exec::prepare(&task, &cwd, &path, argv, env).map_err(exec_err)?;
        let ctx = exec::commit(&task, prepared);
        // From here on the Sentry opens no host files: confine every thread of the process.
        crate::seccomp::confine_sentry()?;
        run::spawn(task, ctx, None).map_err(SandboxError::Thread)?;
        Ok(Sandbox { kernel, init: tg })
    }

    /// Blocks until init exits.
    pub fn wait(&self) -> ExitStatus {
        self.kernel.wait_done()
    }

    /// Delivers a signal from the host to init (e.g. a forwarded SIGTERM).
    pub fn signal(&self, sig: u32) {
        let info = crate::abi::signal::SigInfo {
            signo: sig,
            code: crate::abi::signal::SI_USER,
            ..Default::default()
        };
        send_to_group(&self.init, info, Origin::Host);
    }
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
        let r = Resolver { task, root: root.clone(), start: cwd.clone() };
        if let Ok(loc) = r.resolve(&candidate, Last::Follow)
            && loc.inode.file_type() == FileType::Regular
        {
            return Ok(candidate);
        }
    }
    Err(Errno::ENOENT)
}
