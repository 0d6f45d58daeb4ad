//! Starting one container run, as the kubelet does: the image per its pull policy, the
//! environment from the API, the mounts, then create and start in the runtime, with the
//! Events each step owes (Pulling, Pulled, Created, Started, Failed...). A failure says how
//! it failed, which the worker's memory turns into a retry time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{Container, Pod};

use super::action::PodEvent;
use super::container_config::container_config;
use super::events::Recorder;
use super::image::{ImageStep, PullPolicy, image_step};
use super::memory::{StartFailure, Waiting};
use crate::node::cri_client::Cri;
use crate::node::{Shared, env, volumes};

/// What a start needs besides the pod and the container.
pub struct StartContext<'a> {
    pub shared: &'a Shared,
    pub uid: &'a str,
    pub sandbox: &'a str,
    pub pod_ip: Option<IpAddr>,
    pub volumes: &'a HashMap<String, PathBuf>,
    /// The run's attempt number (the container's restarts so far).
    pub attempt: u32,
    /// The runtime id of the container whose PID namespace this one joins (an ephemeral
    /// container's target, running).
    pub pid_target: Option<String>,
    /// The configuration the pod's sandbox was made with (CreateContainer carries it, as
    /// from a kubelet; containerd's CRI needs it).
    pub sandbox_config: cri::PodSandboxConfig,
}

fn setup_failed(reason: &str, message: impl Into<String>) -> StartFailure {
    StartFailure::Setup(Waiting::new(reason, message))
}

/// Makes the image available as the container's pull policy asks.
async fn ensure_image(
    cri: &mut Cri,
    pod: &Pod,
    c: &Container,
    events: &mut Recorder,
) -> Result<(), StartFailure> {
    let image = c.image.as_deref().unwrap_or_default();
    let spec = cri::ImageSpec { image: image.into(), ..Default::default() };
    let status = cri::ImageStatusRequest { image: Some(spec.clone()), verbose: false };
    let present = cri.images.image_status(status).await.ok().and_then(|r| r.into_inner().image);
    let present = present.is_some();
    match image_step(PullPolicy::of(c), present) {
        ImageStep::Use => return Ok(()),
        ImageStep::NeverPulled => {
            let msg =
                format!("Container image \"{image}\" is not present with pull policy of Never");
            events.record(pod, PodEvent::warning("ErrImageNeverPull", msg.clone()).once()).await;
            return Err(setup_failed("ErrImageNeverPull", msg));
        }
        ImageStep::Pull => {}
    }
    let pulling = format!("Pulling image \"{image}\"");
    events.record(pod, PodEvent::normal("Pulling", pulling).once()).await;
    let pull = cri::PullImageRequest { image: Some(spec), auth: None, sandbox_config: None };
    match cri.images.pull_image(pull).await {
        Ok(_) => {
            let pulled = format!("Successfully pulled image \"{image}\"");
            events.record(pod, PodEvent::normal("Pulled", pulled).once()).await;
            Ok(())
        }
        // A locally imported image (no registry) satisfies Always as well.
        Err(_) if present => Ok(()),
        Err(e) => {
            let msg = format!("Failed to pull image \"{image}\": {}", e.message());
            events.record(pod, PodEvent::warning("Failed", msg.clone()).once()).await;
            Err(setup_failed("ErrImagePull", msg))
        }
    }
}

/// runAsNonRoot, checked as the kubelet does before creating the container: the user it will
/// run as (its security context's, else its image's) must be a non-zero numeric uid.
async fn verify_non_root(
    cri: &mut Cri,
    pod: &Pod,
    c: &Container,
    config: &cri::ContainerConfig,
) -> Result<(), String> {
    let asked = c
        .security_context
        .as_ref()
        .and_then(|s| s.run_as_non_root)
        .or_else(|| pod.spec.as_ref()?.security_context.as_ref()?.run_as_non_root);
    if asked != Some(true) {
        return Ok(());
    }
    let configured = config.linux.as_ref().and_then(|l| l.security_context.as_ref());
    if let Some(uid) = configured.and_then(|s| s.run_as_user.as_ref()) {
        return match uid.value {
            0 => Err("container's runAsUser breaks non-root policy".into()),
            _ => Ok(()),
        };
    }
    let image = c.image.clone().unwrap_or_default();
    let spec = cri::ImageSpec { image: image.clone(), ..Default::default() };
    let status =
        cri.images.image_status(cri::ImageStatusRequest { image: Some(spec), verbose: false });
    let found = status.await.ok().and_then(|r| r.into_inner().image);
    match found {
        Some(i) if i.uid.as_ref().is_some_and(|u| u.value != 0) => Ok(()),
        Some(i) if !i.username.is_empty() => Err(format!(
            "container has runAsNonRoot and image has non-numeric user ({}), cannot verify user is non-root",
            i.username
        )),
        Some(_) => Err("container has runAsNonRoot and image will run as root".into()),
        None => Err(format!("image {image:?} is not present to verify runAsNonRoot")),
    }
}

/// Starts a run of `c`; its runtime id on success.
pub async fn start(
    cx: &StartContext<'_>,
    pod: &Pod,
    c: &Container,
    events: &mut Recorder,
) -> Result<String, StartFailure> {
    let mut cri = cx.shared.cri.clone();
    ensure_image(&mut cri, pod, c, events).await?;
    let facts = env::PodFacts { pod, pod_ip: cx.pod_ip, host_ip: cx.shared.address.as_str() };
    let vars = match env::build(&cx.shared.kube, &facts, c).await {
        Ok(v) => v,
        Err(e) => {
            events.record(pod, PodEvent::warning("Failed", format!("Error: {e}")).once()).await;
            return Err(setup_failed("CreateContainerConfigError", e.to_string()));
        }
    };
    let mounts = match volumes::mounts(pod, c, cx.volumes) {
        Ok(m) => m,
        Err(e) => {
            events.record(pod, PodEvent::warning("Failed", format!("Error: {e}")).once()).await;
            return Err(setup_failed("CreateContainerConfigError", e.to_string()));
        }
    };
    let seccomp_dir = cx.shared.root_dir.join("seccomp");
    let pid_target = cx.pid_target.as_deref();
    let config =
        container_config(pod, cx.uid, c, cx.attempt, vars, mounts, &seccomp_dir, pid_target);
    if let Err(msg) = verify_non_root(&mut cri, pod, c, &config).await {
        events.record(pod, PodEvent::warning("Failed", format!("Error: {msg}")).once()).await;
        return Err(setup_failed("CreateContainerConfigError", msg));
    }
    let create = cri::CreateContainerRequest {
        pod_sandbox_id: cx.sandbox.to_owned(),
        config: Some(config),
        sandbox_config: Some(cx.sandbox_config.clone()),
    };
    let id = match cri.runtime.create_container(create).await {
        Ok(r) => r.into_inner().container_id,
        Err(e) => {
            let msg = format!("Error: {}", e.message());
            events.record(pod, PodEvent::warning("Failed", msg).once()).await;
            return Err(setup_failed("CreateContainerError", e.message()));
        }
    };
    let name = &c.name;
    events.record(pod, PodEvent::normal("Created", format!("Created container {name}"))).await;
    let started =
        cri.runtime.start_container(cri::StartContainerRequest { container_id: id.clone() }).await;
    if let Err(e) = started {
        let msg = format!("Error: failed to start container \"{name}\": {}", e.message());
        events.record(pod, PodEvent::warning("Failed", msg).once()).await;
        let remove = cri::RemoveContainerRequest { container_id: id };
        if let Err(e) = cri.runtime.remove_container(remove).await {
            tracing::debug!("removing container {name} that did not start: {e}");
        }
        return Err(StartFailure::Run(Waiting::new("RunContainerError", e.message())));
    }
    events.record(pod, PodEvent::normal("Started", format!("Started container {name}"))).await;
    Ok(id)
}
