//! The CRI runtime.v1 RuntimeService and ImageService over a Unix socket.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_server::{ImageService, ImageServiceServer};
use k8s_cri::v1::runtime_service_server::{RuntimeService, RuntimeServiceServer};
use tonic::{Request, Response, Status};

use super::handler::TerminalSize;
use super::runtime::CriRuntime;
use super::streaming::{Session, StreamingServer};
use super::{CriError, now_ns};

#[derive(Clone)]
pub struct CriService {
    runtime: Arc<CriRuntime>,
    streaming: Arc<StreamingServer>,
}

type Res<T> = Result<Response<T>, Status>;

/// Runs blocking runtime work off the async executor.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CriError> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(Status::from)
}

fn unimplemented(what: &str) -> Status {
    Status::unimplemented(format!("{what} is not supported by the ringfence runtime"))
}

#[tonic::async_trait]
impl RuntimeService for CriService {
    async fn version(&self, _r: Request<cri::VersionRequest>) -> Res<cri::VersionResponse> {
        Ok(Response::new(cri::VersionResponse {
            version: "0.1.0".into(),
            runtime_name: "ringfence".into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
            runtime_api_version: "v1".into(),
        }))
    }

    async fn run_pod_sandbox(
        &self,
        r: Request<cri::RunPodSandboxRequest>,
    ) -> Res<cri::RunPodSandboxResponse> {
        let r = r.into_inner();
        let config = r.config.ok_or_else(|| Status::invalid_argument("no pod sandbox config"))?;
        let rt = self.runtime.clone();
        let id = blocking(move || rt.run_pod_sandbox(config, &r.runtime_handler)).await?;
        Ok(Response::new(cri::RunPodSandboxResponse { pod_sandbox_id: id }))
    }

    async fn stop_pod_sandbox(
        &self,
        r: Request<cri::StopPodSandboxRequest>,
    ) -> Res<cri::StopPodSandboxResponse> {
        let id = self.runtime.sandbox_id(&r.into_inner().pod_sandbox_id)?;
        let rt = self.runtime.clone();
        blocking(move || rt.stop_pod_sandbox(&id)).await?;
        Ok(Response::new(cri::StopPodSandboxResponse {}))
    }

    async fn remove_pod_sandbox(
        &self,
        r: Request<cri::RemovePodSandboxRequest>,
    ) -> Res<cri::RemovePodSandboxResponse> {
        // Removing what is gone is not an error (CRI semantics).
        let Some(id) = gone_is_ok(self.runtime.sandbox_id(&r.into_inner().pod_sandbox_id))? else {
            return Ok(Response::new(cri::RemovePodSandboxResponse {}));
        };
        let rt = self.runtime.clone();
        blocking(move || rt.remove_pod_sandbox(&id)).await?;
        Ok(Response::new(cri::RemovePodSandboxResponse {}))
    }

    async fn pod_sandbox_status(
        &self,
        r: Request<cri::PodSandboxStatusRequest>,
    ) -> Res<cri::PodSandboxStatusResponse> {
        let id = self.runtime.sandbox_id(&r.into_inner().pod_sandbox_id)?;
        let status = self.runtime.pod_sandbox_status(&id)?;
        let containers = self
            .runtime
            .list_containers(Some(cri::ContainerFilter {
                pod_sandbox_id: id,
                ..Default::default()
            }))
            .into_iter()
            .filter_map(|c| self.runtime.container_status(&c.id).ok())
            .collect();
        Ok(Response::new(cri::PodSandboxStatusResponse {
            status: Some(status),
            info: Default::default(),
            containers_statuses: containers,
            timestamp: now_ns(),
        }))
    }

    async fn list_pod_sandbox(
        &self,
        r: Request<cri::ListPodSandboxRequest>,
    ) -> Res<cri::ListPodSandboxResponse> {
        Ok(Response::new(cri::ListPodSandboxResponse {
            items: self.runtime.list_pod_sandbox(r.into_inner().filter),
        }))
    }

    async fn create_container(
        &self,
        r: Request<cri::CreateContainerRequest>,
    ) -> Res<cri::CreateContainerResponse> {
        let r = r.into_inner();
        let config = r.config.ok_or_else(|| Status::invalid_argument("no container config"))?;
        let rt = self.runtime.clone();
        let sandbox = rt.sandbox_id(&r.pod_sandbox_id)?;
        let id = blocking(move || rt.create_container(&sandbox, config)).await?;
        Ok(Response::new(cri::CreateContainerResponse { container_id: id }))
    }

    async fn start_container(
        &self,
        r: Request<cri::StartContainerRequest>,
    ) -> Res<cri::StartContainerResponse> {
        let id = self.runtime.container_id(&r.into_inner().container_id)?;
        let rt = self.runtime.clone();
        blocking(move || rt.start_container(&id)).await?;
        Ok(Response::new(cri::StartContainerResponse {}))
    }

    async fn stop_container(
        &self,
        r: Request<cri::StopContainerRequest>,
    ) -> Res<cri::StopContainerResponse> {
        let r = r.into_inner();
        let rt = self.runtime.clone();
        let timeout = Duration::from_secs(r.timeout.max(0) as u64);
        let id = rt.container_id(&r.container_id)?;
        blocking(move || rt.stop_container(&id, timeout)).await?;
        Ok(Response::new(cri::StopContainerResponse {}))
    }

    async fn remove_container(
        &self,
        r: Request<cri::RemoveContainerRequest>,
    ) -> Res<cri::RemoveContainerResponse> {
        let Some(id) = gone_is_ok(self.runtime.container_id(&r.into_inner().container_id))? else {
            return Ok(Response::new(cri::RemoveContainerResponse {}));
        };
        let rt = self.runtime.clone();
        blocking(move || rt.remove_container(&id)).await?;
        Ok(Response::new(cri::RemoveContainerResponse {}))
    }

    async fn list_containers(
        &self,
        r: Request<cri::ListContainersRequest>,
    ) -> Res<cri::ListContainersResponse> {
        Ok(Response::new(cri::ListContainersResponse {
            containers: self.runtime.list_containers(r.into_inner().filter),
        }))
    }

    async fn container_status(
        &self,
        r: Request<cri::ContainerStatusRequest>,
    ) -> Res<cri::ContainerStatusResponse> {
        let id = self.runtime.container_id(&r.into_inner().container_id)?;
        let status = self.runtime.container_status(&id)?;
        Ok(Response::new(cri::ContainerStatusResponse {
            status: Some(status),
            info: Default::default(),
        }))
    }

    async fn update_container_resources(
        &self,
        r: Request<cri::UpdateContainerResourcesRequest>,
    ) -> Res<cri::UpdateContainerResourcesResponse> {
        let r = r.into_inner();
        let id = self.runtime.container_id(&r.container_id)?;
        if let Some(linux) = &r.linux {
            self.runtime.update_resources(&id, linux)?;
        }
        Ok(Response::new(cri::UpdateContainerResourcesResponse {}))
    }

    async fn reopen_container_log(
        &self,
        r: Request<cri::ReopenContainerLogRequest>,
    ) -> Res<cri::ReopenContainerLogResponse> {
        let id = self.runtime.container_id(&r.into_inner().container_id)?;
        self.runtime.reopen_log(&id)?;
        Ok(Response::new(cri::ReopenContainerLogResponse {}))
    }

    async fn exec_sync(&self, r: Request<cri::ExecSyncRequest>) -> Res<cri::ExecSyncResponse> {
        let r = r.into_inner();
        let rt = self.runtime.clone();
        let timeout = (r.timeout > 0).then(|| Duration::from_secs(r.timeout as u64));
        let id = rt.container_id(&r.container_id)?;
        let (stdout, stderr, exit_code) =
            blocking(move || rt.exec_sync(&id, r.cmd, timeout)).await?;
        Ok(Response::new(cri::ExecSyncResponse { stdout, stderr, exit_code }))
    }

    async fn exec(&self, r: Request<cri::ExecRequest>) -> Res<cri::ExecResponse> {
        let mut r = r.into_inner();
        if r.cmd.is_empty() {
            return Err(Status::invalid_argument("exec needs a command"));
        }
        r.container_id = self.runtime.container_id(&r.container_id)?;
        if !(r.stdout || r.stderr || r.stdin) {
            return Err(Status::invalid_argument("one of stdin, stdout or stderr must be set"));
        }
        let terminal = r.tty.then(TerminalSize::default);
        self.runtime.exec_target(&r.container_id, r.cmd.clone(), terminal)?;
        let url = self.streaming.register(Session::Exec(r));
        Ok(Response::new(cri::ExecResponse { url }))
    }

    async fn attach(&self, r: Request<cri::AttachRequest>) -> Res<cri::AttachResponse> {
        let mut r = r.into_inner();
        if !(r.stdout || r.stderr || r.stdin) {
            return Err(Status::invalid_argument("one of stdin, stdout or stderr must be set"));
        }
        r.container_id = self.runtime.container_id(&r.container_id)?;
        self.runtime.attach_target(&r.container_id)?;
        let url = self.streaming.register(Session::Attach(r));
        Ok(Response::new(cri::AttachResponse { url }))
    }

    async fn port_forward(
        &self,
        r: Request<cri::PortForwardRequest>,
    ) -> Res<cri::PortForwardResponse> {
        let r = r.into_inner();
        let sandbox = self.runtime.forward_target(&self.runtime.sandbox_id(&r.pod_sandbox_id)?)?;
        let url = self.streaming.register(Session::PortForward { sandbox });
        Ok(Response::new(cri::PortForwardResponse { url }))
    }

    async fn container_stats(
        &self,
        r: Request<cri::ContainerStatsRequest>,
    ) -> Res<cri::ContainerStatsResponse> {
        let rt = self.runtime.clone();
        let id = rt.container_id(&r.into_inner().container_id)?;
        let stats = blocking(move || rt.container_stats(&id)).await?;
        Ok(Response::new(cri::ContainerStatsResponse { stats: Some(stats) }))
    }

    async fn list_container_stats(
        &self,
        r: Request<cri::ListContainerStatsRequest>,
    ) -> Res<cri::ListContainerStatsResponse> {
        let filter = r.into_inner().filter.unwrap_or_default();
        let rt = self.runtime.clone();
        let stats = blocking(move || {
            let ids = rt.list_containers(Some(cri::ContainerFilter {
                id: filter.id,
                pod_sandbox_id: filter.pod_sandbox_id,
                label_selector: filter.label_selector,
                ..Default::default()
            }));
            Ok(ids.iter().filter_map(|c| rt.container_stats(&c.id).ok()).collect())
        })
        .await?;
        Ok(Response::new(cri::ListContainerStatsResponse { stats }))
    }

    async fn pod_sandbox_stats(
        &self,
        _r: Request<cri::PodSandboxStatsRequest>,
    ) -> Res<cri::PodSandboxStatsResponse> {
        Err(unimplemented("pod sandbox stats"))
    }

    async fn list_pod_sandbox_stats(
        &self,
        _r: Request<cri::ListPodSandboxStatsRequest>,
    ) -> Res<cri::ListPodSandboxStatsResponse> {
        Err(unimplemented("pod sandbox stats"))
    }

    async fn update_runtime_config(
        &self,
        r: Request<cri::UpdateRuntimeConfigRequest>,
    ) -> Res<cri::UpdateRuntimeConfigResponse> {
        let network = r.into_inner().runtime_config.and_then(|c| c.network_config);
        if let Some(n) = network {
            self.runtime.update_pod_cidr(&n.pod_cidr)?;
        }
        Ok(Response::new(cri::UpdateRuntimeConfigResponse {}))
    }

    async fn status(&self, _r: Request<cri::StatusRequest>) -> Res<cri::StatusResponse> {
        let cond = |t: &str| cri::RuntimeCondition {
            r#type: t.into(),
            status: true,
            reason: String::new(),
            message: String::new(),
        };
        Ok(Response::new(cri::StatusResponse {
            status: Some(cri::RuntimeStatus {
                conditions: vec![cond("RuntimeReady"), cond("NetworkReady")],
            }),
            info: Default::default(),
            runtime_handlers: self
                .runtime
                .handler_names()
                .into_iter()
                .map(|n| cri::RuntimeHandler { name: n.into(), features: None })
                .collect(),
            features: None,
        }))
    }

    async fn checkpoint_container(
        &self,
        _r: Request<cri::CheckpointContainerRequest>,
    ) -> Res<cri::CheckpointContainerResponse> {
        Err(unimplemented("checkpointing"))
    }

    type GetContainerEventsStream =
        tokio_stream::wrappers::ReceiverStream<Result<cri::ContainerEventResponse, Status>>;

    async fn get_container_events(
        &self,
        _r: Request<cri::GetEventsRequest>,
    ) -> Res<Self::GetContainerEventsStream> {
        Err(unimplemented("container events"))
    }

    async fn list_metric_descriptors(
        &self,
        _r: Request<cri::ListMetricDescriptorsRequest>,
    ) -> Res<cri::ListMetricDescriptorsResponse> {
        Ok(Response::new(cri::ListMetricDescriptorsResponse { descriptors: Vec::new() }))
    }

    async fn list_pod_sandbox_metrics(
        &self,
        _r: Request<cri::ListPodSandboxMetricsRequest>,
    ) -> Res<cri::ListPodSandboxMetricsResponse> {
        Ok(Response::new(cri::ListPodSandboxMetricsResponse { pod_metrics: Vec::new() }))
    }

    async fn runtime_config(
        &self,
        _r: Request<cri::RuntimeConfigRequest>,
    ) -> Res<cri::RuntimeConfigResponse> {
        Ok(Response::new(cri::RuntimeConfigResponse { linux: None }))
    }
}

fn image_proto(i: super::image_source::ImageSummary) -> cri::Image {
    // The CRI reports a numeric user as uid and a named one as username (the group is not
    // part of it).
    let user = i.user.as_deref().map(|u| u.split_once(':').map_or(u, |(u, _)| u));
    let (uid, username) = match user.map(|u| (u, u.parse::<i64>())) {
        Some((_, Ok(uid))) => (Some(cri::Int64Value { value: uid }), String::new()),
        Some((name, Err(_))) => (None, name.to_string()),
        None => (None, String::new()),
    };
    cri::Image {
        id: i.id,
        repo_tags: i.repo_tags,
        repo_digests: i.repo_digests,
        size: i.size,
        uid,
        username,
        ..Default::default()
    }
}

#[tonic::async_trait]
impl ImageService for CriService {
    async fn list_images(
        &self,
        r: Request<cri::ListImagesRequest>,
    ) -> Res<cri::ListImagesResponse> {
        let filter =
            r.into_inner().filter.and_then(|f| f.image).map(|i| i.image).filter(|s| !s.is_empty());
        let imgs = self.runtime.images.clone();
        let list = blocking(move || imgs.list()).await?;
        let images = list
            .into_iter()
            .filter(|i| {
                filter.as_ref().is_none_or(|f| {
                    &i.id == f || i.repo_tags.contains(f) || i.repo_digests.contains(f)
                })
            })
            .map(image_proto)
            .collect();
        Ok(Response::new(cri::ListImagesResponse { images }))
    }

    async fn image_status(
        &self,
        r: Request<cri::ImageStatusRequest>,
    ) -> Res<cri::ImageStatusResponse> {
        let name = r.into_inner().image.map(|i| i.image).unwrap_or_default();
        let imgs = self.runtime.images.clone();
        let image = blocking(move || imgs.status(&name)).await?.map(image_proto);
        Ok(Response::new(cri::ImageStatusResponse { image, info: Default::default() }))
    }

    async fn pull_image(&self, r: Request<cri::PullImageRequest>) -> Res<cri::PullImageResponse> {
        let name = r.into_inner().image.map(|i| i.image).unwrap_or_default();
        if name.is_empty() {
            return Err(Status::invalid_argument("no image to pull"));
        }
        let imgs = self.runtime.images.clone();
        let image_ref = blocking(move || imgs.pull(&name)).await?;
        Ok(Response::new(cri::PullImageResponse { image_ref }))
    }

    async fn remove_image(
        &self,
        r: Request<cri::RemoveImageRequest>,
    ) -> Res<cri::RemoveImageResponse> {
        let name = r.into_inner().image.map(|i| i.image).unwrap_or_default();
        let imgs = self.runtime.images.clone();
        blocking(move || imgs.remove(&name)).await?;
        Ok(Response::new(cri::RemoveImageResponse {}))
    }

    async fn image_fs_info(
        &self,
        _r: Request<cri::ImageFsInfoRequest>,
    ) -> Res<cri::ImageFsInfoResponse> {
        let imgs = self.runtime.images.clone();
        let (bytes, inodes) = blocking(move || imgs.usage()).await?;
        let usage = cri::FilesystemUsage {
            timestamp: now_ns(),
            fs_id: Some(cri::FilesystemIdentifier {
                mountpoint: self.runtime.images.mountpoint().to_string_lossy().into_owned(),
            }),
            used_bytes: Some(cri::UInt64Value { value: bytes }),
            inodes_used: Some(cri::UInt64Value { value: inodes }),
        };
        Ok(Response::new(cri::ImageFsInfoResponse {
            image_filesystems: vec![usage],
            container_filesystems: Vec::new(),
        }))
    }
}

/// `Ok(None)` for an id that names nothing, where the call is idempotent.
fn gone_is_ok(id: Result<String, CriError>) -> Result<Option<String>, CriError> {
    match id {
        Ok(id) => Ok(Some(id)),
        Err(CriError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Serves the CRI on `socket` until the future is dropped.
pub async fn serve(
    socket: &Path,
    runtime: Arc<CriRuntime>,
    streaming: Arc<StreamingServer>,
) -> Result<(), CriError> {
    let _ = std::fs::remove_file(socket);
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let listener = tokio::net::UnixListener::bind(socket)?;
    let incoming = guest_agent::unix_grpc::incoming(listener);
    let svc = CriService { runtime, streaming };
    tonic::transport::Server::builder()
        .add_service(RuntimeServiceServer::new(svc.clone()))
        .add_service(ImageServiceServer::new(svc))
        .serve_with_incoming(incoming)
        .await
        .map_err(|e| CriError::Sandbox(format!("CRI server: {e}")))
}
