//! `ringfence.shell=DEVICE` on the kernel command line: a container made from DEVICE with a
//! shell on the serial console, for a human at `ringfence vm run` without a command. The agent
//! API stays up beside it; when the shell ends, the guest shuts down.

use std::sync::Arc;

use tonic::Request;

use crate::proto::{self, agent_server::Agent, exec_event::Event};
use crate::service::AgentService;

/// The container the console's shell runs in.
pub const CONTAINER: &str = "console";

/// The kernel command-line key naming the shell's device.
pub const CMDLINE_KEY: &str = "ringfence.shell";

/// Runs the shell to its end, then asks the agent to shut the guest down.
pub async fn run(service: Arc<AgentService>, device: String) {
    match shell(&service, &device).await {
        Ok(status) => tracing::info!("the console shell ended ({status}); shutting down"),
        Err(e) => tracing::error!("the console shell: {e}; shutting down"),
    }
    service.shutdown.send_replace(true);
}

async fn shell(service: &AgentService, device: &str) -> Result<String, String> {
    let create = proto::CreateContainerRequest {
        id: CONTAINER.into(),
        device: device.into(),
        fstype: "ext4".into(),
        ..Default::default()
    };
    service
        .create_container(Request::new(create))
        .await
        .map_err(|s| format!("making a container from {device}: {}", s.message()))?;
    let exec = proto::ExecRequest {
        container_id: CONTAINER.into(),
        exec_id: "console-shell".into(),
        args: vec!["/bin/sh".into()],
        env: vec!["HOME=/root".into(), "TERM=linux".into()],
        console: true,
        ..Default::default()
    };
    let mut events = service
        .exec(Request::new(exec))
        .await
        .map_err(|s| format!("starting /bin/sh: {}", s.message()))?
        .into_inner();
    use tokio_stream::StreamExt;
    while let Some(ev) = events.next().await {
        if let Ok(proto::ExecEvent { event: Some(Event::Exited(s)), .. }) = ev {
            return crate::exit::Exit::try_from(&s)
                .map(|e| e.to_string())
                .map_err(|_| "no exit status".to_owned());
        }
    }
    Err("the shell's events ended without its exit".into())
}
