//! The shim's life as containerd drives it: `start` (find or launch the daemon of the task's
//! pod and print its address), the daemon itself (serving the Task service until Shutdown)
//! and `delete` (clean up after a daemon that died).

use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use containerd_shim::protos::protobuf::MessageField;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::{Config, DeleteResponse, ExitSignal, Flags, StartOpts};

use super::bundle::OciSpec;
use super::events::{Events, timestamp};
use super::pods::Pods;
use super::task::TaskService;
use super::{BINARY_NAME, rootfs};

/// How long `start` waits for a new daemon's socket.
const DAEMON_START: Duration = Duration::from_secs(10);

pub struct ShimLifecycle {
    namespace: String,
    exit: Arc<ExitSignal>,
}

fn other(e: impl std::fmt::Display) -> containerd_shim::Error {
    containerd_shim::Error::Other(e.to_string())
}

fn socket_path(address: &str) -> &str {
    address.strip_prefix("unix://").unwrap_or(address)
}

/// The daemon logs into the FIFO containerd reads shim logs from (`log` in the bundle), when
/// containerd has it open; `start` and `delete` log nothing, their output is their answer.
fn init_daemon_logging(debug: bool) {
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(fifo) =
        std::fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open("log")
    else {
        return;
    };
    let fd = std::os::fd::AsRawFd::as_raw_fd(&fifo);
    // SAFETY: fcntl on a descriptor we own; writes then block rather than fail when full.
    unsafe { libc::fcntl(fd, libc::F_SETFL, 0) };
    let default = if debug { "debug" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RINGFENCE_SHIM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(fifo))
        .init();
}

impl containerd_shim::Shim for ShimLifecycle {
    type T = TaskService;

    fn new(_runtime_id: &str, args: &Flags, _config: &mut Config) -> Self {
        if args.action.is_empty() {
            init_daemon_logging(args.debug);
        }
        ShimLifecycle { namespace: args.namespace.clone(), exit: Arc::new(ExitSignal::default()) }
    }

    fn start_shim(&mut self, opts: StartOpts) -> containerd_shim::Result<String> {
        // containerd runs `start` in the task's bundle.
        let spec = OciSpec::load(Path::new(".")).map_err(other)?;
        let group = spec.group(&opts.id);
        let address = containerd_shim::socket_address(&opts.address, &opts.namespace, &group);
        // A pod's later containers go to the daemon its sandbox container started.
        if UnixStream::connect(socket_path(&address)).is_err() {
            let exe = std::env::current_exe().map_err(other)?;
            let mut cmd = Command::new(exe);
            cmd.arg0(BINARY_NAME)
                .args(["-namespace", &opts.namespace, "-id", &opts.id])
                .args(["-address", &opts.address, "-socket", &address])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                // Not in containerd's process group: signals meant for it are not the shim's.
                .process_group(0);
            if opts.debug {
                cmd.arg("-debug");
            }
            cmd.spawn().map_err(other)?;
            let deadline = Instant::now() + DAEMON_START;
            while UnixStream::connect(socket_path(&address)).is_err() {
                if Instant::now() > deadline {
                    return Err(other(format!("the shim daemon did not listen on {address}")));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        // Where containerd finds the shim again after a restart of its own.
        std::fs::write("address", &address).map_err(other)?;
        Ok(address)
    }

    fn delete_shim(&mut self) -> containerd_shim::Result<DeleteResponse> {
        // The daemon is gone: unmount what it mounted and report the task killed.
        if let Ok(spec) = OciSpec::load(Path::new(".")) {
            rootfs::unmount(&spec.rootfs(Path::new(".")));
        }
        Ok(DeleteResponse {
            exit_status: 128 + 9,
            exited_at: MessageField::some(timestamp(std::time::SystemTime::now())),
            ..Default::default()
        })
    }

    fn wait(&mut self) {
        self.exit.wait();
    }

    fn create_task_service(&self, publisher: RemotePublisher) -> TaskService {
        // The Sentry and its Gofers are this binary's other commands.
        let exe = std::env::current_exe().unwrap_or_else(|_| "ringfence".into());
        TaskService::new(Events::new(publisher, &self.namespace), Pods::new(exe), self.exit.clone())
    }
}
