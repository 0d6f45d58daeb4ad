//! The node agent's connection to the CRI runtime over its Unix socket.

use std::path::{Path, PathBuf};

use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

#[derive(Clone)]
pub struct Cri {
    pub runtime: RuntimeServiceClient<Channel>,
    pub images: ImageServiceClient<Channel>,
}

impl Cri {
    /// Connects (lazily) to the runtime listening on `socket`.
    pub fn connect(socket: &Path) -> Result<Cri, tonic::transport::Error> {
        let path: PathBuf = socket.to_owned();
        let channel = Endpoint::from_static("http://[::]:50051").connect_with_connector_lazy(
            tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    let s = tokio::net::UnixStream::connect(path).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(s))
                }
            }),
        );
        Ok(Cri {
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
        })
    }

    /// The runtime handlers the runtime reports in its Status, in its order.
    pub async fn runtime_handlers(&self) -> Result<Vec<String>, tonic::Status> {
        let mut rt = self.runtime.clone();
        let status = rt.status(k8s_cri::v1::StatusRequest { verbose: false }).await?;
        Ok(status.into_inner().runtime_handlers.into_iter().map(|h| h.name).collect())
    }
}
