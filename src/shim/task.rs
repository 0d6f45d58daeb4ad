//! The shim v2 Task service: containerd's requests carried out on the shim's sandboxes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use containerd_shim::protos::api::{self, Empty};
use containerd_shim::protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskIO, TaskPaused,
    TaskResumed, TaskStart,
};
use containerd_shim::protos::protobuf::MessageField;
use containerd_shim::protos::topics;
use containerd_shim::protos::types::task::{ProcessInfo, Status as ApiStatus};
use containerd_shim::{ExitSignal, TtrpcContext, TtrpcResult};
use orchestrator::cri::handler::{ContainerSpec, ProcessExit, TerminalSize};

use super::bundle::{OciProcess, OciSpec, Role, process_spec};
use super::config::ShimConfig;
use super::container::{Container, Launch};
use super::error::ShimError;
use super::events::{Events, timestamp};
use super::pods::{BootSpec, Pod, Pods};
use super::process::{Process, Status};
use super::rootfs;
use super::stdio::{ProcessIo, StdioPaths};

/// How long an exit waits for the process's output to reach containerd.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a pod's sandbox container checks that its Sentry still runs.
const SANDBOX_POLL: Duration = Duration::from_millis(250);

#[derive(Clone)]
pub struct TaskService {
    inner: Arc<Inner>,
}

struct Inner {
    events: Events,
    pods: Pods,
    containers: Mutex<HashMap<String, Arc<Container>>>,
    exit: Arc<ExitSignal>,
}

/// The exit status containerd reports for a process killed by `signal`.
fn killed(signal: u32) -> u32 {
    128 + signal
}

impl TaskService {
    pub fn new(events: Events, pods: Pods, exit: Arc<ExitSignal>) -> TaskService {
        TaskService { inner: Arc::new(Inner { events, pods, containers: Mutex::default(), exit }) }
    }

    fn containers(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Container>>> {
        self.inner.containers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn container(&self, id: &str) -> Result<Arc<Container>, ShimError> {
        self.containers().get(id).cloned().ok_or_else(|| ShimError::NotFound(format!("task {id}")))
    }

    fn create_task(&self, req: api::CreateTaskRequest) -> Result<u32, ShimError> {
        if self.containers().contains_key(&req.id) {
            return Err(ShimError::AlreadyExists(format!("task {} exists", req.id)));
        }
        let bundle = PathBuf::from(&req.bundle);
        let spec = OciSpec::load(&bundle)?;
        let role = spec.role();
        let launch = match role {
            Role::PodSandbox => None,
            Role::Standalone | Role::PodContainer { .. } => {
                let (mounts, files) = spec.binds();
                Some(Launch {
                    process: spec.process(req.terminal)?,
                    files,
                    mounts,
                    policy: spec.rootfs_policy(),
                    pid_namespace: spec.pid_namespace(),
                    memory_limit: spec.memory_limit(),
                })
            }
        };
        let hostname = if spec.hostname.is_empty() {
            req.id.chars().take(12).collect()
        } else {
            spec.hostname.clone()
        };
        let pod = match &role {
            Role::PodContainer { sandbox_id } => self
                .inner
                .pods
                .get(sandbox_id)
                .ok_or_else(|| ShimError::NotFound(format!("pod sandbox {sandbox_id}")))?,
            Role::PodSandbox | Role::Standalone => {
                let config = ShimConfig::from_options(req.options.as_ref())?;
                let boot = BootSpec {
                    hostname: &hostname,
                    netns: spec.netns(),
                    // A standalone container's limit is its sandbox's; a pod's sandbox
                    // container carries none.
                    memory_limit_mib: spec.memory_limit().map(|b| b >> 20),
                    config: &config,
                };
                self.inner.pods.boot(&req.id, boot)?
            }
        };
        let rootfs = spec.rootfs(&bundle);
        let mounted = launch.is_some() && !req.rootfs.is_empty();
        if mounted && let Err(e) = rootfs::mount(&req.rootfs, &rootfs) {
            if role == Role::Standalone {
                self.inner.pods.remove(&req.id);
            }
            return Err(e);
        }
        let stdio = StdioPaths {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        let container = Arc::new(Container {
            id: req.id.clone(),
            bundle: req.bundle.clone(),
            role,
            pod,
            rootfs,
            mounted,
            launch,
            init: Arc::new(Process::new("", stdio, None)),
            execs: Mutex::default(),
            paused: AtomicBool::new(false),
        });
        let pid = container.pid();
        self.containers().insert(req.id.clone(), container);
        tracing::info!(id = %req.id, "created");
        self.inner.events.publish(
            topics::TASK_CREATE_EVENT_TOPIC,
            Box::new(TaskCreate {
                container_id: req.id,
                bundle: req.bundle,
                rootfs: req.rootfs,
                io: MessageField::some(TaskIO {
                    stdin: req.stdin,
                    stdout: req.stdout,
                    stderr: req.stderr,
                    terminal: req.terminal,
                    ..Default::default()
                }),
                pid,
                ..Default::default()
            }),
        );
        Ok(pid)
    }

    fn start_process(&self, c: &Arc<Container>, exec_id: &str) -> Result<u32, ShimError> {
        let p = c.process(exec_id)?;
        let pid = c.pid();
        let mut state = p.state();
        if state.status != Status::Created {
            return Err(ShimError::Precondition(format!("{} was started already", c.id)));
        }
        if !exec_id.is_empty() && c.init.state().status != Status::Running {
            return Err(ShimError::Precondition(format!("task {} is not running", c.id)));
        }
        if c.role == Role::PodSandbox {
            if !exec_id.is_empty() {
                return Err(ShimError::Unsupported("exec in a pod's sandbox container"));
            }
            state.status = Status::Running;
            drop(state);
            self.publish_start(c, exec_id, pid);
            self.watch_sandbox(c.clone());
            return Ok(pid);
        }
        let (io, fds) = ProcessIo::start(&p.stdio)?;
        let handle = match (&p.spec, &c.launch) {
            (Some(spec), _) => c.pod.sandbox.exec(&c.id, spec.clone(), fds)?,
            (None, Some(launch)) => c.pod.sandbox.start_container(
                ContainerSpec {
                    id: &c.id,
                    image_id: "",
                    rootfs: &c.rootfs,
                    process: launch.process.clone(),
                    files: launch.files.clone(),
                    mounts: &launch.mounts,
                    rootfs_policy: launch.policy.clone(),
                    memory_limit_bytes: launch.memory_limit,
                    pid_namespace: launch.pid_namespace.clone(),
                },
                fds,
            )?,
            (None, None) => return Err(ShimError::Invalid(format!("{} has no process", c.id))),
        };
        state.status = Status::Running;
        state.handle = Some(handle);
        state.io = Some(io);
        drop(state);
        tracing::info!(id = %c.id, exec_id, handle, "started");
        self.publish_start(c, exec_id, pid);
        let (service, c, p) = (self.clone(), c.clone(), p.clone());
        std::thread::Builder::new().name("process-wait".into()).spawn(move || {
            // The sandbox gone under the process (stopped, crashed) counts as SIGKILL.
            let exit = c.pod.sandbox.wait(handle).unwrap_or(ProcessExit::KILLED);
            service.exited(&c, &p, exit.code.clamp(0, 255) as u32);
        })?;
        Ok(pid)
    }

    fn publish_start(&self, c: &Container, exec_id: &str, pid: u32) {
        let events = &self.inner.events;
        if exec_id.is_empty() {
            let event = TaskStart { container_id: c.id.clone(), pid, ..Default::default() };
            events.publish(topics::TASK_START_EVENT_TOPIC, Box::new(event));
        } else {
            let event = TaskExecStarted {
                container_id: c.id.clone(),
                exec_id: exec_id.to_owned(),
                pid,
                ..Default::default()
            };
            events.publish(topics::TASK_EXEC_STARTED_EVENT_TOPIC, Box::new(event));
        }
    }

    /// A pod's sandbox container runs as long as its Sentry does.
    fn watch_sandbox(&self, c: Arc<Container>) {
        let (service, id) = (self.clone(), c.id.clone());
        let spawned = std::thread::Builder::new().name("sandbox-watch".into()).spawn(move || {
            while c.init.state().status == Status::Running {
                if !c.pod.sandbox.alive() {
                    service.exited(&c, &c.init, killed(9));
                    return;
                }
                std::thread::sleep(SANDBOX_POLL);
            }
        });
        if let Err(e) = spawned {
            tracing::warn!("watching the sandbox of {id}: {e}");
        }
    }

    /// Records that `p` ended with `status` once its output is through, and tells containerd.
    fn exited(&self, c: &Container, p: &Process, status: u32) {
        let io = p.state().io.take();
        if let Some(mut io) = io {
            io.drain(DRAIN_TIMEOUT);
        }
        if !p.stop(status) {
            return;
        }
        tracing::info!(id = %c.id, exec_id = %p.exec_id, status, "exited");
        let exit = p.state().exit;
        let event = TaskExit {
            container_id: c.id.clone(),
            id: if p.exec_id.is_empty() { c.id.clone() } else { p.exec_id.clone() },
            pid: c.pid(),
            exit_status: status,
            exited_at: MessageField::from_option(exit.map(|e| timestamp(e.at))),
            ..Default::default()
        };
        self.inner.events.publish(topics::TASK_EXIT_EVENT_TOPIC, Box::new(event));
    }

    fn kill_process(&self, req: &api::KillRequest) -> Result<(), ShimError> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        let (status, handle) = {
            let s = p.state();
            (s.status, s.handle)
        };
        match (status, handle) {
            (Status::Stopped, _) => {
                Err(ShimError::NotFound(format!("process of {} has finished", req.id)))
            }
            (Status::Created, _) => {
                self.exited(&c, &p, killed(req.signal));
                Ok(())
            }
            (Status::Running, None) => {
                // A pod's sandbox container: ending it ends the Sentry.
                c.pod.sandbox.stop();
                self.exited(&c, &p, killed(req.signal));
                Ok(())
            }
            (Status::Running, Some(handle)) => {
                if req.all && req.exec_id.is_empty() {
                    for e in c.execs_map().values() {
                        if let Some(h) = e.state().handle {
                            let _ = c.pod.sandbox.signal(h, req.signal);
                        }
                    }
                }
                Ok(c.pod.sandbox.signal(handle, req.signal)?)
            }
        }
    }

    fn delete_process(&self, req: &api::DeleteRequest) -> Result<api::DeleteResponse, ShimError> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        if p.state().status == Status::Running {
            return Err(ShimError::Precondition(format!("{} is still running", req.id)));
        }
        let exit = p.state().exit;
        let response = api::DeleteResponse {
            pid: c.pid(),
            exit_status: exit.map(|e| e.status).unwrap_or(0),
            exited_at: MessageField::from_option(exit.map(|e| timestamp(e.at))),
            ..Default::default()
        };
        if !req.exec_id.is_empty() {
            c.execs_map().remove(&req.exec_id);
            return Ok(response);
        }
        match &c.role {
            Role::PodContainer { .. } => {
                if let Err(e) = c.pod.sandbox.remove_container(&c.id) {
                    tracing::warn!("removing {} from its sandbox: {e}", c.id);
                }
            }
            Role::Standalone | Role::PodSandbox => self.inner.pods.remove(&c.id),
        }
        if c.mounted {
            rootfs::unmount(&c.rootfs);
        }
        self.containers().remove(&c.id);
        tracing::info!(id = %c.id, "deleted");
        let event = TaskDelete {
            container_id: c.id.clone(),
            pid: response.pid,
            exit_status: response.exit_status,
            exited_at: response.exited_at.clone(),
            id: c.id.clone(),
            ..Default::default()
        };
        self.inner.events.publish(topics::TASK_DELETE_EVENT_TOPIC, Box::new(event));
        Ok(response)
    }

    fn add_exec(&self, req: api::ExecProcessRequest) -> Result<(), ShimError> {
        let c = self.container(&req.id)?;
        if c.role == Role::PodSandbox {
            return Err(ShimError::Unsupported("exec in a pod's sandbox container"));
        }
        let value = req.spec.as_ref().map(|a| a.value.as_slice()).unwrap_or_default();
        let oci: OciProcess = serde_json::from_slice(value)
            .map_err(|e| ShimError::Invalid(format!("exec process spec: {e}")))?;
        // The container's system-call filter holds for its execs too.
        let seccomp = c.launch.as_ref().and_then(|l| l.process.security.seccomp.clone());
        let spec = process_spec(&oci, req.terminal, seccomp)?;
        let stdio = StdioPaths {
            stdin: req.stdin,
            stdout: req.stdout,
            stderr: req.stderr,
            terminal: req.terminal,
        };
        {
            let mut execs = c.execs_map();
            if execs.contains_key(&req.exec_id) {
                return Err(ShimError::AlreadyExists(format!("exec {} exists", req.exec_id)));
            }
            execs.insert(
                req.exec_id.clone(),
                Arc::new(Process::new(&req.exec_id, stdio, Some(spec))),
            );
        }
        let event =
            TaskExecAdded { container_id: req.id, exec_id: req.exec_id, ..Default::default() };
        self.inner.events.publish(topics::TASK_EXEC_ADDED_EVENT_TOPIC, Box::new(event));
        Ok(())
    }

    fn state_of(&self, req: &api::StateRequest) -> Result<api::StateResponse, ShimError> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        let s = p.state();
        let status = match s.status {
            Status::Created => ApiStatus::CREATED,
            Status::Running if c.paused.load(Ordering::SeqCst) => ApiStatus::PAUSED,
            Status::Running => ApiStatus::RUNNING,
            Status::Stopped => ApiStatus::STOPPED,
        };
        Ok(api::StateResponse {
            id: req.id.clone(),
            bundle: c.bundle.clone(),
            pid: c.pid(),
            status: status.into(),
            stdin: p.stdio.stdin.clone(),
            stdout: p.stdio.stdout.clone(),
            stderr: p.stdio.stderr.clone(),
            terminal: p.stdio.terminal,
            exit_status: s.exit.map(|e| e.status).unwrap_or(0),
            exited_at: MessageField::from_option(s.exit.map(|e| timestamp(e.at))),
            exec_id: req.exec_id.clone(),
            ..Default::default()
        })
    }

    /// Pauses or resumes a running task's processes in its sandbox.
    fn set_paused(&self, id: &str, paused: bool) -> Result<(), ShimError> {
        let c = self.container(id)?;
        if c.launch.is_none() {
            return Err(ShimError::Unsupported("pausing a pod's sandbox container"));
        }
        if c.init.state().status != Status::Running {
            return Err(ShimError::Precondition(format!("task {id} is not running")));
        }
        c.pod.sandbox.pause(&c.id, paused)?;
        if c.paused.swap(paused, Ordering::SeqCst) != paused {
            let container_id = c.id.clone();
            let events = &self.inner.events;
            if paused {
                let event = TaskPaused { container_id, ..Default::default() };
                events.publish(topics::TASK_PAUSED_EVENT_TOPIC, Box::new(event));
            } else {
                let event = TaskResumed { container_id, ..Default::default() };
                events.publish(topics::TASK_RESUMED_EVENT_TOPIC, Box::new(event));
            }
        }
        tracing::info!(id, paused, "pause state");
        Ok(())
    }

    fn pod_of(&self, id: &str) -> Result<Arc<Pod>, ShimError> {
        Ok(self.container(id)?.pod.clone())
    }
}

impl containerd_shim::Task for TaskService {
    fn create(
        &self,
        _ctx: &TtrpcContext,
        req: api::CreateTaskRequest,
    ) -> TtrpcResult<api::CreateTaskResponse> {
        let pid = self.create_task(req)?;
        Ok(api::CreateTaskResponse { pid, ..Default::default() })
    }

    fn start(
        &self,
        _ctx: &TtrpcContext,
        req: api::StartRequest,
    ) -> TtrpcResult<api::StartResponse> {
        let c = self.container(&req.id)?;
        let pid = self.start_process(&c, &req.exec_id)?;
        Ok(api::StartResponse { pid, ..Default::default() })
    }

    fn state(
        &self,
        _ctx: &TtrpcContext,
        req: api::StateRequest,
    ) -> TtrpcResult<api::StateResponse> {
        Ok(self.state_of(&req)?)
    }

    fn wait(&self, _ctx: &TtrpcContext, req: api::WaitRequest) -> TtrpcResult<api::WaitResponse> {
        let p = self.container(&req.id)?.process(&req.exec_id)?;
        let exit = p.wait();
        Ok(api::WaitResponse {
            exit_status: exit.status,
            exited_at: MessageField::some(timestamp(exit.at)),
            ..Default::default()
        })
    }

    fn kill(&self, _ctx: &TtrpcContext, req: api::KillRequest) -> TtrpcResult<Empty> {
        self.kill_process(&req)?;
        Ok(Empty::new())
    }

    fn delete(
        &self,
        _ctx: &TtrpcContext,
        req: api::DeleteRequest,
    ) -> TtrpcResult<api::DeleteResponse> {
        Ok(self.delete_process(&req)?)
    }

    fn exec(&self, _ctx: &TtrpcContext, req: api::ExecProcessRequest) -> TtrpcResult<Empty> {
        self.add_exec(req)?;
        Ok(Empty::new())
    }

    fn resize_pty(&self, _ctx: &TtrpcContext, req: api::ResizePtyRequest) -> TtrpcResult<Empty> {
        let c = self.container(&req.id)?;
        let handle = c.process(&req.exec_id)?.state().handle;
        if let Some(handle) = handle {
            let size = TerminalSize {
                rows: req.height.min(u16::MAX as u32) as u16,
                cols: req.width.min(u16::MAX as u32) as u16,
            };
            c.pod.sandbox.resize(handle, size).map_err(ShimError::from)?;
        }
        Ok(Empty::new())
    }

    fn close_io(&self, _ctx: &TtrpcContext, req: api::CloseIORequest) -> TtrpcResult<Empty> {
        let p = self.container(&req.id)?.process(&req.exec_id)?;
        if req.stdin
            && let Some(io) = p.state().io.as_ref()
        {
            io.close_stdin();
        }
        Ok(Empty::new())
    }

    fn pids(&self, _ctx: &TtrpcContext, req: api::PidsRequest) -> TtrpcResult<api::PidsResponse> {
        let pod = self.pod_of(&req.id)?;
        let processes = pod
            .sandbox
            .pid()
            .map(|pid| ProcessInfo { pid, ..Default::default() })
            .into_iter()
            .collect();
        Ok(api::PidsResponse { processes, ..Default::default() })
    }

    fn connect(
        &self,
        _ctx: &TtrpcContext,
        req: api::ConnectRequest,
    ) -> TtrpcResult<api::ConnectResponse> {
        let task_pid = self.container(&req.id).map(|c| c.pid()).unwrap_or(0);
        Ok(api::ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            version: env!("CARGO_PKG_VERSION").into(),
            ..Default::default()
        })
    }

    fn shutdown(&self, _ctx: &TtrpcContext, _req: api::ShutdownRequest) -> TtrpcResult<Empty> {
        // One shim serves a whole pod: it stays while any of its tasks does, and then until a
        // template it builds for the node's next microVM pods is done (the build is bounded
        // by its boot timeout).
        if self.containers().is_empty() {
            let inner = self.inner.clone();
            std::thread::spawn(move || {
                while inner.pods.background_work() {
                    std::thread::sleep(Duration::from_millis(100));
                }
                inner.exit.signal();
            });
        }
        Ok(Empty::new())
    }

    fn pause(&self, _ctx: &TtrpcContext, req: api::PauseRequest) -> TtrpcResult<Empty> {
        self.set_paused(&req.id, true)?;
        Ok(Empty::new())
    }

    fn resume(&self, _ctx: &TtrpcContext, req: api::ResumeRequest) -> TtrpcResult<Empty> {
        self.set_paused(&req.id, false)?;
        Ok(Empty::new())
    }

    fn stats(
        &self,
        _ctx: &TtrpcContext,
        req: api::StatsRequest,
    ) -> TtrpcResult<api::StatsResponse> {
        let c = self.container(&req.id)?;
        if c.launch.is_none() {
            return Err(ShimError::Unsupported("stats of a pod's sandbox container").into());
        }
        let usage = c.pod.sandbox.stats(&c.id).map_err(ShimError::from)?;
        let stats = super::metrics::pack(&usage)?;
        Ok(api::StatsResponse { stats: MessageField::some(stats), ..Default::default() })
    }
}
