//! The one seam between components and the API server: a [`Client`] executes typed
//! [`ApiRequest`]s. [`InProcess`] calls the engine directly; [`super::https::HttpsClient`]
//! speaks HTTPS to a server named by a kubeconfig. Components never know which.

use std::sync::Arc;

use async_trait::async_trait;

use crate::api::{Api, ApiError, ApiRequest, ApiResponse, User};

#[async_trait]
pub trait Client: Send + Sync + 'static {
    async fn execute(&self, req: ApiRequest) -> Result<ApiResponse, ApiError>;
}

/// Calls the engine of a server in the same process, as `user`.
pub struct InProcess {
    api: Arc<Api>,
    user: User,
}

impl InProcess {
    pub fn new(api: Arc<Api>, user: &str) -> Arc<Self> {
        Arc::new(Self { api, user: User::system(user) })
    }
}

#[async_trait]
impl Client for InProcess {
    async fn execute(&self, req: ApiRequest) -> Result<ApiResponse, ApiError> {
        self.api.execute(&self.user, req).await
    }
}
