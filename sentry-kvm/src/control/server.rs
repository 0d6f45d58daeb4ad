//! The sandbox side of the control channel.

use crate::sync::Mutex;
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use super::protocol::{PidNamespaceMode, Request, Response};
use crate::abi::termios::Winsize;
use crate::gofer::GoferClient;
use crate::gofer::wire;
use crate::kernel::pid_ns::PidNamespace;
use crate::kernel::thread_group::{ExitStatus, ThreadGroup};
use crate::sandbox::{ContainerSpec, RootfsPolicy, Sandbox, Volume, signal_process};

pub struct ControlServer {
    listener: OwnedFd,
    sandbox: Arc<Sandbox>,
    /// Processes started through this server, by pid.
    processes: Mutex<HashMap<i32, Arc<ThreadGroup>>>,
    /// Container id to its main process.
    containers: Mutex<HashMap<String, i32>>,
    done: Mutex<bool>,
    done_cv: crate::sync::Condvar,
}

impl ControlServer {
    /// Binds the control socket at `path` (before the Sentry is confined: binding creates a
    /// host file).
    pub fn bind(path: &Path, sandbox: Arc<Sandbox>) -> io::Result<Arc<ControlServer>> {
        let _ = std::fs::remove_file(path);
        // SAFETY: plain socket creation; checked.
        let fd =
            unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: just created.
        let listener = unsafe { OwnedFd::from_raw_fd(fd) };
        let addr = super::address::SocketAddress::new(path)?;
        let len = super::address::SocketAddress::len();
        // SAFETY: binding our socket to a valid address structure.
        if unsafe { libc::bind(listener.as_raw_fd(), (&raw const addr.addr).cast(), len) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: plain listen.
        if unsafe { libc::listen(listener.as_raw_fd(), 64) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Arc::new(ControlServer {
            listener,
            sandbox,
            processes: Mutex::new(HashMap::new()),
            containers: Mutex::new(HashMap::new()),
            done: Mutex::new(false),
            done_cv: crate::sync::Condvar::new(),
        }))
    }

    /// Accepts connections (one thread each) until a Shutdown request.
    pub fn serve(self: &Arc<Self>) -> io::Result<()> {
        let me = self.clone();
        std::thread::Builder::new().name("control".into()).spawn(move || {
            loop {
                // SAFETY: accepting on our listening socket.
                let fd = unsafe {
                    libc::accept4(
                        me.listener.as_raw_fd(),
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                        libc::SOCK_CLOEXEC,
                    )
                };
                if fd < 0 {
                    if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    tracing::error!("control socket accept: {}", io::Error::last_os_error());
                    return;
                }
                // SAFETY: just accepted.
                let conn = unsafe { OwnedFd::from_raw_fd(fd) };
                let me2 = me.clone();
                let spawned = std::thread::Builder::new()
                    .name("control-conn".into())
                    .spawn(move || me2.connection(conn));
                if let Err(e) = spawned {
                    tracing::error!("control connection thread: {e}");
                }
            }
        })?;
        let mut d = self.done.lock().unwrap_or_else(|e| e.into_inner());
        while !*d {
            d = self.done_cv.wait(d).unwrap_or_else(|e| e.into_inner());
        }
        Ok(())
    }

    fn connection(&self, conn: OwnedFd) {
        let mut buf = Vec::new();
        loop {
            let (n, fds) = match wire::recv_fds(conn.as_raw_fd(), &mut buf) {
                Ok(x) => x,
                Err(_) => return,
            };
            let resp = match serde_json::from_slice::<Request>(&buf[..n]) {
                Ok(req) => self.handle(req, fds),
                Err(e) => Response::Error { message: format!("malformed request: {e}") },
            };
            let bytes = serde_json::to_vec(&resp).unwrap_or_default();
            if wire::send(conn.as_raw_fd(), &bytes, None).is_err() {
                return;
            }
        }
    }

    fn handle(&self, req: Request, fds: Vec<OwnedFd>) -> Response {
        match self.dispatch(req, fds) {
            Ok(r) => r,
            Err(message) => Response::Error { message },
        }
    }

    /// Pauses or resumes container `container`; asking twice is not an error.
    fn freeze(&self, container: &str, frozen: bool) -> Result<Response, String> {
        let main = *self
            .containers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(container)
            .ok_or_else(|| format!("no container {container}"))?;
        self.sandbox.freeze(&*self.process(main)?, frozen);
        Ok(Response::Ok)
    }

    fn process(&self, pid: i32) -> Result<Arc<ThreadGroup>, String> {
        self.processes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&pid)
            .cloned()
            .ok_or_else(|| format!("no process {pid}"))
    }

    /// The PID namespace a container asks for: the pod's (None), a new one, or the one of
    /// another container of this sandbox.
    fn pid_namespace(&self, mode: &PidNamespaceMode) -> Result<Option<Arc<PidNamespace>>, String> {
        match mode {
            PidNamespaceMode::Pod => Ok(None),
            PidNamespaceMode::Container => {
                self.sandbox.pid_namespace().map(Some).map_err(|e| e.to_string())
            }
            PidNamespaceMode::Target(target) => {
                let main = *self
                    .containers
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(target)
                    .ok_or_else(|| {
                    format!("no container {target} to share a PID namespace with")
                })?;
                Ok(Some(self.process(main)?.pidns.clone()))
            }
        }
    }

    fn dispatch(&self, req: Request, fds: Vec<OwnedFd>) -> Result<Response, String> {
        match req {
            Request::StartContainer {
                id,
                process,
                files,
                mounts,
                readonly_rootfs,
                masked_paths,
                readonly_paths,
                pid_namespace,
            } => {
                if fds.len() != 4 + mounts.len() {
                    return Err(format!(
                        "start_container needs {} descriptors: gofer, stdin, stdout, stderr and one gofer per mount",
                        4 + mounts.len()
                    ));
                }
                let mut fds = fds.into_iter();
                let mut next = || fds.next().ok_or_else(|| "missing descriptor".to_string());
                let (gofer, stdin, stdout, stderr) = (next()?, next()?, next()?, next()?);
                let mut volumes = Vec::new();
                for m in mounts {
                    let chan = next()?;
                    let gofer = GoferClient::from_channel(chan)
                        .map_err(|e| format!("gofer channel of {}: {e}", m.destination))?;
                    volumes.push(Volume {
                        gofer,
                        destination: m.destination,
                        read_only: m.read_only,
                    });
                }
                if self.containers.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&id) {
                    return Err(format!("container {id} exists"));
                }
                let pidns = self.pid_namespace(&pid_namespace)?;
                let gofer =
                    GoferClient::from_channel(gofer).map_err(|e| format!("gofer channel: {e}"))?;
                let spec = ContainerSpec {
                    pidns,
                    gofer,
                    process,
                    files,
                    volumes,
                    stdio: [stdin, stdout, stderr],
                    rootfs: RootfsPolicy {
                        read_only: readonly_rootfs,
                        masked_paths,
                        readonly_paths,
                    },
                };
                let tg = self.sandbox.start_container(spec).map_err(|e| e.to_string())?;
                let pid = tg.tgid;
                self.processes.lock().unwrap_or_else(|e| e.into_inner()).insert(pid, tg);
                self.containers.lock().unwrap_or_else(|e| e.into_inner()).insert(id, pid);
                Ok(Response::Started { pid })
            }
            Request::Exec { container, process } => {
                let [stdin, stdout, stderr]: [OwnedFd; 3] = fds
                    .try_into()
                    .map_err(|_| "exec needs 3 descriptors: stdin, stdout, stderr".to_string())?;
                let main = *self
                    .containers
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&container)
                    .ok_or_else(|| format!("no container {container}"))?;
                let main_tg = self.process(main)?;
                if main_tg.has_exited() {
                    return Err(format!("container {container} has exited"));
                }
                let tg = self
                    .sandbox
                    .exec_in(&main_tg, &process, [stdin, stdout, stderr])
                    .map_err(|e| e.to_string())?;
                let pid = tg.tgid;
                self.processes.lock().unwrap_or_else(|e| e.into_inner()).insert(pid, tg);
                Ok(Response::Started { pid })
            }
            Request::Signal { pid, signal } => {
                if !(1..=64).contains(&signal) {
                    return Err(format!("invalid signal {signal}"));
                }
                signal_process(&self.process(pid)?, signal);
                Ok(Response::Ok)
            }
            Request::Resize { pid, rows, cols } => {
                self.process(pid)?;
                // The process leads its session; its terminal is that session's.
                let pty = self
                    .sandbox
                    .kernel
                    .devpts
                    .controlling(pid)
                    .ok_or_else(|| format!("process {pid} has no terminal"))?;
                pty.set_winsize(Winsize { rows, cols, ..Default::default() });
                Ok(Response::Ok)
            }
            Request::Wait { pid } => {
                let process = self.process(pid)?;
                let status = process.wait_exit();
                let oom_killed = process.oom_killed();
                Ok(match status {
                    ExitStatus::Exited(code) => Response::Exited { code, signal: None, oom_killed },
                    ExitStatus::Signaled { sig, .. } => {
                        Response::Exited { code: 128 + sig as i32, signal: Some(sig), oom_killed }
                    }
                })
            }
            Request::Stats { container } => {
                let main = *self
                    .containers
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&container)
                    .ok_or_else(|| format!("no container {container}"))?;
                let (cpu_us, memory_bytes, processes) = self.sandbox.stats(&*self.process(main)?);
                Ok(Response::Stats { cpu_us, memory_bytes, processes })
            }
            Request::Pause { container } => self.freeze(&container, true),
            Request::Resume { container } => self.freeze(&container, false),
            Request::Shutdown => {
                *self.done.lock().unwrap_or_else(|e| e.into_inner()) = true;
                self.done_cv.notify_all();
                Ok(Response::Ok)
            }
        }
    }
}
