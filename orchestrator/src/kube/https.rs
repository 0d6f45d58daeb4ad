//! [`Client`] over HTTPS: typed requests become Kubernetes REST calls to the server a
//! kubeconfig names. Connections are pooled; when the server cannot be reached the kubeconfig
//! is read again (a restarted server may listen elsewhere).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use futures_util::stream;
use serde_json::{Value, json};

use super::client::Client;
use super::connection::{Connection, ConnectionConfig, ConnectionError};
use crate::api::request::{DeleteOptions, FieldValidation, ListOptions, PatchType, WriteOptions};
use crate::api::{ApiError, ApiRequest, ApiResponse, Operation, Target};

const POOL: usize = 32;

pub struct HttpsClient {
    kubeconfig: PathBuf,
    config: Mutex<ConnectionConfig>,
    pool: Mutex<Vec<Connection>>,
}

fn unavailable(e: ConnectionError) -> ApiError {
    ApiError::new(503, "ServiceUnavailable", e.to_string())
}

impl HttpsClient {
    pub fn from_kubeconfig(path: &Path) -> Result<Self, ConnectionError> {
        Ok(Self {
            kubeconfig: path.to_owned(),
            config: Mutex::new(ConnectionConfig::from_kubeconfig(path)?),
            pool: Mutex::new(Vec::new()),
        })
    }

    async fn connection(&self) -> Result<Connection, ApiError> {
        if let Some(c) = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(c);
        }
        let config = self.config.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match config.connect().await {
            Ok(c) => Ok(c),
            Err(first) => {
                let fresh =
                    ConnectionConfig::from_kubeconfig(&self.kubeconfig).map_err(unavailable)?;
                *self.config.lock().unwrap_or_else(|e| e.into_inner()) = fresh.clone();
                fresh.connect().await.map_err(|_| unavailable(first))
            }
        }
    }

    fn give_back(&self, c: Connection) {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < POOL {
            pool.push(c);
        }
    }
}

#[async_trait]
impl Client for HttpsClient {
    async fn execute(&self, req: ApiRequest) -> Result<ApiResponse, ApiError> {
        let call = to_http(&req)?;
        if matches!(req.op, Operation::Watch(_)) {
            let conn = self.connection().await?;
            let rx = conn.watch(&call.path).await.map_err(unavailable)?;
            let events =
                stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) });
            return Ok(ApiResponse::Watch(Box::pin(events)));
        }
        // A pooled connection may have been closed by the server: one fresh retry.
        let mut last = None;
        for _ in 0..2 {
            let mut conn = self.connection().await?;
            let body = call.body.as_ref().map(|b| serde_json::to_vec(b).unwrap_or_default());
            match conn
                .request(call.method, &call.path, call.content_type, body.unwrap_or_default())
                .await
            {
                Ok(reply) => {
                    self.give_back(conn);
                    let body: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
                    if (200..300).contains(&reply.status) {
                        return Ok(ApiResponse::Object {
                            code: reply.status,
                            body,
                            warnings: Vec::new(),
                        });
                    }
                    return Err(error_from_status(reply.status, &body));
                }
                Err(e) => last = Some(e),
            }
        }
        Err(unavailable(last.unwrap_or_else(|| ConnectionError::Http("no attempt".into()))))
    }
}

fn error_from_status(code: u16, body: &Value) -> ApiError {
    const REASONS: [&str; 12] = [
        "NotFound",
        "AlreadyExists",
        "Conflict",
        "Invalid",
        "Expired",
        "Gone",
        "Forbidden",
        "Unauthorized",
        "BadRequest",
        "MethodNotAllowed",
        "ServiceUnavailable",
        "InternalError",
    ];
    let reason = body["reason"].as_str().unwrap_or("");
    let reason = REASONS.iter().find(|r| **r == reason).copied().unwrap_or("Unknown");
    let message = body["message"].as_str().unwrap_or("request failed").to_owned();
    ApiError::new(code, reason, message)
}

struct HttpCall {
    method: &'static str,
    path: String,
    content_type: Option<&'static str>,
    body: Option<Value>,
}

/// Characters kept as they are in a query value.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn resource_path(t: &Target) -> String {
    let mut p = if t.kind.group.is_empty() {
        "/api/v1".to_owned()
    } else {
        format!("/apis/{}/{}", t.kind.group, t.kind.version)
    };
    if let (true, Some(ns)) = (t.kind.namespaced, &t.namespace) {
        p.push_str(&format!("/namespaces/{ns}"));
    }
    p.push('/');
    p.push_str(t.kind.plural);
    if let Some(n) = &t.name {
        p.push('/');
        p.push_str(n);
    }
    if let Some(s) = t.subresource {
        p.push('/');
        p.push_str(s.name());
    }
    p
}

fn list_query(o: &ListOptions, q: &mut Vec<String>) {
    if !o.label_selector.is_empty() {
        q.push(format!("labelSelector={}", escape(&o.label_selector.to_string())));
    }
    if !o.field_selector.is_empty() {
        let terms: Vec<String> = o
            .field_selector
            .0
            .iter()
            .map(|(f, eq, v)| format!("{f}{}{v}", if *eq { "=" } else { "!=" }))
            .collect();
        q.push(format!("fieldSelector={}", escape(&terms.join(","))));
    }
    if o.limit > 0 {
        q.push(format!("limit={}", o.limit));
    }
    if let Some(c) = &o.continue_token {
        q.push(format!("continue={}", escape(c)));
    }
    if let Some(rv) = &o.resource_version {
        q.push(format!("resourceVersion={}", escape(rv)));
    }
    if let Some(m) = o.resource_version_match {
        q.push(format!("resourceVersionMatch={}", m.as_str()));
    }
    if let Some(t) = o.timeout {
        q.push(format!("timeoutSeconds={}", t.as_secs().max(1)));
    }
    if o.allow_bookmarks {
        q.push("allowWatchBookmarks=true".into());
    }
}

fn write_query(o: &WriteOptions, q: &mut Vec<String>) {
    if o.dry_run {
        q.push("dryRun=All".into());
    }
    if let Some(m) = &o.field_manager {
        q.push(format!("fieldManager={}", escape(m)));
    }
    q.push(
        match o.field_validation {
            FieldValidation::Ignore => "fieldValidation=Ignore",
            FieldValidation::Warn => "fieldValidation=Warn",
            FieldValidation::Strict => "fieldValidation=Strict",
        }
        .into(),
    );
    if o.force {
        q.push("force=true".into());
    }
}

fn delete_body(o: &DeleteOptions) -> Value {
    use crate::api::request::Propagation;
    let mut b = json!({"kind": "DeleteOptions", "apiVersion": "v1"});
    if let Some(p) = o.propagation {
        b["propagationPolicy"] = json!(match p {
            Propagation::Orphan => "Orphan",
            Propagation::Background => "Background",
            Propagation::Foreground => "Foreground",
        });
    }
    if let Some(g) = o.grace_period {
        b["gracePeriodSeconds"] = json!(g);
    }
    if let Some(u) = &o.precondition_uid {
        b["preconditions"]["uid"] = json!(u);
    }
    if let Some(rv) = &o.precondition_rv {
        b["preconditions"]["resourceVersion"] = json!(rv);
    }
    if o.dry_run {
        b["dryRun"] = json!(["All"]);
    }
    b
}

fn to_http(req: &ApiRequest) -> Result<HttpCall, ApiError> {
    let mut path = resource_path(&req.target);
    let mut q = Vec::new();
    let (method, content_type, body) = match &req.op {
        Operation::Get => ("GET", None, None),
        Operation::List(o) => {
            list_query(o, &mut q);
            ("GET", None, None)
        }
        Operation::Watch(o) => {
            q.push("watch=true".into());
            list_query(o, &mut q);
            ("GET", None, None)
        }
        Operation::Create { body, opts } => {
            write_query(opts, &mut q);
            ("POST", Some("application/json"), Some(body.clone()))
        }
        Operation::Update { body, opts } => {
            write_query(opts, &mut q);
            ("PUT", Some("application/json"), Some(body.clone()))
        }
        Operation::Patch { patch_type, patch, opts } => {
            write_query(opts, &mut q);
            let ct = match patch_type {
                PatchType::Json => "application/json-patch+json",
                PatchType::Merge => "application/merge-patch+json",
                PatchType::Strategic => "application/strategic-merge-patch+json",
                PatchType::Apply => "application/apply-patch+yaml",
            };
            ("PATCH", Some(ct), Some(patch.clone()))
        }
        Operation::Delete(o) => ("DELETE", Some("application/json"), Some(delete_body(o))),
        Operation::DeleteCollection(l, o) => {
            list_query(l, &mut q);
            ("DELETE", Some("application/json"), Some(delete_body(o)))
        }
    };
    if !q.is_empty() {
        path.push('?');
        path.push_str(&q.join("&"));
    }
    Ok(HttpCall { method, path, content_type, body })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::resources;
    use crate::api::selector::LabelSelector;

    #[test]
    fn requests_become_kubernetes_paths() {
        let pods = resources::find("", "v1", "pods").unwrap();
        let t = Target { kind: pods, namespace: Some("a".into()), name: None, subresource: None };
        let opts = ListOptions {
            label_selector: LabelSelector::parse("app=web,tier in (x)").unwrap(),
            resource_version: Some("12".into()),
            allow_bookmarks: true,
            ..Default::default()
        };
        let call = to_http(&ApiRequest {
            target: t,
            op: Operation::Watch(opts),
            format: Default::default(),
        })
        .unwrap();
        assert_eq!(
            call.path,
            "/api/v1/namespaces/a/pods?watch=true&labelSelector=app%3Dweb%2Ctier%20in%20%28x%29&resourceVersion=12&allowWatchBookmarks=true"
        );
        let deps = resources::find("apps", "v1", "deployments").unwrap();
        let t = Target {
            kind: deps,
            namespace: Some("a".into()),
            name: Some("web".into()),
            subresource: Some(resources::Subresource::Scale),
        };
        let op = Operation::Patch {
            patch_type: PatchType::Merge,
            patch: json!({}),
            opts: Default::default(),
        };
        let call = to_http(&ApiRequest { target: t, op, format: Default::default() }).unwrap();
        assert_eq!(call.method, "PATCH");
        assert!(call.path.starts_with("/apis/apps/v1/namespaces/a/deployments/web/scale?"));
        assert_eq!(call.content_type, Some("application/merge-patch+json"));
    }
}
