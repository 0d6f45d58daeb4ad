//! The node agent's view of the API server: a small pool of connections and the calls the agent
//! makes (objects, status patches, events, watches).

use std::sync::Mutex;

use serde_json::{Value, json};

use crate::client::{ClientConfig, ClientError, Connection, Reply};

pub struct ApiClient {
    config: ClientConfig,
    idle: Mutex<Vec<Connection>>,
}

impl ApiClient {
    pub fn new(config: ClientConfig) -> ApiClient {
        ApiClient { config, idle: Mutex::new(Vec::new()) }
    }

    async fn conn(&self) -> Result<Connection, ClientError> {
        let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match pooled {
            Some(c) => Ok(c),
            None => self.config.connect().await,
        }
    }

    fn put_back(&self, c: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < 16 {
            idle.push(c);
        }
    }

    /// One request; a failed pooled connection is replaced once.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Reply, ClientError> {
        let mut c = self.conn().await?;
        let r = match c.request(method, path, content_type, body.clone()).await {
            Ok(r) => r,
            Err(_) => {
                c = self.config.connect().await?;
                c.request(method, path, content_type, body).await?
            }
        };
        self.put_back(c);
        Ok(r)
    }

    pub async fn get(&self, path: &str) -> Result<Reply, ClientError> {
        self.request("GET", path, None, Vec::new()).await
    }

    pub async fn send(&self, method: &str, path: &str, body: &Value) -> Result<Reply, ClientError> {
        self.request(
            method,
            path,
            Some("application/json"),
            serde_json::to_vec(body).unwrap_or_default(),
        )
        .await
    }

    pub async fn merge_patch(&self, path: &str, body: &Value) -> Result<Reply, ClientError> {
        self.request(
            "PATCH",
            path,
            Some("application/merge-patch+json"),
            serde_json::to_vec(body).unwrap_or_default(),
        )
        .await
    }

    pub async fn watch(
        &self,
        path: &str,
    ) -> Result<tokio::sync::mpsc::Receiver<Value>, ClientError> {
        self.config.connect().await?.watch(path).await
    }

    /// Records an Event about `pod`, as the kubelet does.
    pub async fn event(&self, node: &str, pod: &Value, kind: &str, reason: &str, message: &str) {
        let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default");
        let name = pod["metadata"]["name"].as_str().unwrap_or("");
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let ev = json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": format!("{name}."), "namespace": ns},
            "involvedObject": {
                "kind": "Pod", "apiVersion": "v1", "namespace": ns, "name": name,
                "uid": pod["metadata"]["uid"].clone(),
            },
            "reason": reason,
            "message": message,
            "type": kind,
            "source": {"component": "kubelet", "host": node},
            "reportingComponent": "kubelet",
            "reportingInstance": node,
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
        });
        if let Err(e) = self.send("POST", &format!("/api/v1/namespaces/{ns}/events"), &ev).await {
            tracing::debug!("recording event {reason} for {ns}/{name}: {e}");
        }
    }
}
