//! The engine: executes typed [`ApiRequest`]s against the [`Store`] — authorization,
//! admission (defaulting, validation, namespace lifecycle), optimistic concurrency, watches.
//! It never sees HTTP; in-process components call it directly.

pub mod authorize;
mod body;
mod cluster_ip;
mod consistency;
mod converted;
mod delete;
mod ephemeral_containers;
mod eviction;
mod limit_ranger;
mod node_port;
mod object_list;
mod priority;
mod quota;
mod read;
mod retry;
mod runtime_class;
pub mod service_account_admission;
mod subresource;
pub mod token_request;
pub mod token_review;
mod write;

use std::net::Ipv4Addr;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::Stream;
use serde_json::{Value, json};

pub use cluster_ip::ServiceCidr;
pub use delete::{FOREGROUND, ORPHAN};
pub use object_list::ObjectList;

use super::error::ApiError;
use super::meta;
use super::request::{ApiRequest, Operation, PatchType, User};
use super::resources::{self, ResourceKind};
use super::watch_cache::WatchCache;
use crate::store::{KeyValue, Store};

/// Watch events as `{"type": ..., "object": ...}` values.
pub type WatchEvents = Pin<Box<dyn Stream<Item = Value> + Send>>;

pub enum ApiResponse {
    Object {
        code: u16,
        body: Value,
        warnings: Vec<String>,
    },
    /// A list (200), its items shared with the watch cache.
    List(ObjectList),
    Watch(WatchEvents),
}

impl ApiResponse {
    fn ok(body: Value) -> Self {
        Self::Object { code: 200, body, warnings: Vec::new() }
    }
}

#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub service_cidr: ServiceCidr,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            service_cidr: ServiceCidr::new(Ipv4Addr::new(10, 96, 0, 0), 12)
                .expect("a valid default range"),
        }
    }
}

pub struct Api {
    store: Arc<dyn Store>,
    ips: cluster_ip::Allocator,
    /// Held while a Service's node ports are chosen and stored, so two writes never share one.
    node_ports: tokio::sync::Mutex<()>,
    /// Who bearer tokens belong to, for TokenReviews.
    tokens: std::sync::OnceLock<Arc<dyn token_review::TokenAuthenticator>>,
    /// Signs and checks service account tokens.
    signer: std::sync::OnceLock<Arc<crate::api::service_account_token::TokenSigner>>,
    /// Serves lists and watches once [`Api::start_watch_cache`] has filled it.
    cache: Arc<WatchCache>,
}

/// Namespaces every cluster has.
pub const SYSTEM_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

impl Api {
    pub fn new(store: Arc<dyn Store>, config: ApiConfig) -> Arc<Self> {
        Arc::new(Self {
            store,
            ips: cluster_ip::Allocator::new(config.service_cidr),
            node_ports: tokio::sync::Mutex::new(()),
            tokens: std::sync::OnceLock::new(),
            signer: std::sync::OnceLock::new(),
            cache: WatchCache::new(),
        })
    }

    /// Fills the watch cache and keeps it current until the task is aborted; until it is
    /// filled (and after store failures, until it is filled again) reads go to the store.
    pub fn start_watch_cache(&self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(crate::api::watch_cache::run(self.cache.clone(), self.store.clone()))
    }

    pub fn watch_cache(&self) -> &Arc<WatchCache> {
        &self.cache
    }

    /// The `kubernetes` Service's cluster IP (the first of the range).
    pub fn kubernetes_service_ip(&self) -> std::net::Ipv4Addr {
        self.ips.first()
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Creates what every cluster starts with, if missing: system namespaces, the `kubernetes`
    /// service, and the `cluster-admin` role bound to `system:masters`.
    pub async fn bootstrap(&self) -> Result<(), ApiError> {
        let admin = User::system("system:apiserver");
        let mut objects = Vec::new();
        for ns in SYSTEM_NAMESPACES {
            objects
                .push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
        }
        objects.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "cluster-admin"},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, {"nonResourceURLs": ["*"], "verbs": ["*"]}]}));
        objects.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "cluster-admin"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:masters"}]}));
        objects.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "system:discovery"},
            "rules": [{"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/version", "/healthz", "/readyz", "/livez", "/openapi", "/openapi/*"], "verbs": ["get"]}]}));
        objects.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "system:discovery"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:discovery"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:authenticated"}]}));
        for (name, value) in priority::SYSTEM_PRIORITY_CLASSES {
            objects.push(json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                "metadata": {"name": name}, "value": value,
                "description": "Used for system critical pods that must not be moved from their current node."}));
        }
        objects.push(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"clusterIP": self.ips.first().to_string(), "ports": [{"name": "https", "port": 443, "targetPort": 6443}]}}));
        for obj in objects {
            let (group, _) = resources::split_api_version(obj["apiVersion"].as_str().unwrap_or(""));
            let kind = resources::find_kind(group, obj["kind"].as_str().unwrap_or(""))
                .ok_or_else(|| ApiError::internal("bootstrap object of an unknown kind"))?;
            let target = super::request::Target {
                kind,
                namespace: meta::namespace(&obj).map(str::to_owned),
                name: None,
                subresource: None,
            };
            let req = ApiRequest {
                target,
                op: Operation::Create { body: obj, opts: Default::default() },
                format: Default::default(),
            };
            match self.execute(&admin, req).await {
                Ok(_) => {}
                Err(e) if e.code == 409 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Executes one request on behalf of `user`.
    pub async fn execute(&self, user: &User, req: ApiRequest) -> Result<ApiResponse, ApiError> {
        self.authorize_request(user, &req).await?;
        let kind = req.target.kind;
        if let Some(custom) = kind.custom {
            if matches!(req.op, Operation::Create { .. })
                && super::custom::registry::is_terminating(&custom.definition)
            {
                return Err(ApiError::method_not_allowed(
                    "create not allowed while custom resource definition is terminating",
                ));
            }
            if let Operation::Patch { patch_type: PatchType::Strategic, .. } = req.op {
                return Err(ApiError::new(
                    415,
                    "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
                ));
            }
            return match self.execute_authorized(user, req).await? {
                ApiResponse::Object { code, mut body, warnings } => {
                    super::custom::conversion::serve_as(kind, &mut body);
                    Ok(ApiResponse::Object { code, body, warnings })
                }
                // Items stored under the version asked for go out as the cache holds them.
                ApiResponse::List(list) if custom.storage_version == kind.version => {
                    Ok(ApiResponse::List(list))
                }
                ApiResponse::List(list) => {
                    let mut body = list.into_value();
                    super::custom::conversion::serve_as(kind, &mut body);
                    Ok(ApiResponse::ok(body))
                }
                ApiResponse::Watch(events) => {
                    use futures_util::StreamExt;
                    Ok(ApiResponse::Watch(Box::pin(events.map(move |mut e| {
                        super::custom::conversion::serve_as(kind, &mut e);
                        e
                    }))))
                }
            };
        }
        match super::conversion::of(kind) {
            Some(c) => self.execute_converted(user, req, c).await,
            None => self.execute_authorized(user, req).await,
        }
    }

    /// Executes a request of a stored (or virtual) kind whose caller may make it.
    async fn execute_authorized(
        &self,
        user: &User,
        req: ApiRequest,
    ) -> Result<ApiResponse, ApiError> {
        let ApiRequest { target, op, format } = req;
        if target.kind.storage == resources::Storage::Virtual {
            return match op {
                Operation::Create { body, .. } => {
                    self.review(user, target.kind, body).await.map(ApiResponse::ok)
                }
                _ => Err(ApiError::method_not_allowed(format!(
                    "{} only supports create",
                    target.kind.plural
                ))),
            };
        }
        if let Some(sub) = target.subresource {
            return self.subresource(user, &target, sub, op, format).await;
        }
        match op {
            Operation::Get => self.get(&target, format).await,
            Operation::List(opts) => self.list(&target, &opts, format).await,
            Operation::Watch(opts) => self.watch(&target, opts, format).await,
            Operation::Create { body, opts } => self.create(user, &target, body, &opts).await,
            Operation::Update { body, opts } => self.update(user, &target, body, &opts, None).await,
            Operation::Patch { patch_type, patch, opts } => {
                self.patch(user, &target, patch_type, &patch, &opts, None).await
            }
            Operation::Delete(opts) => self.delete(&target, &opts).await,
            Operation::DeleteCollection(list, opts) => {
                self.delete_collection(&target, &list, &opts).await
            }
        }
    }
}

/// Where an object lives in the store.
pub fn key(kind: &ResourceKind, namespace: Option<&str>, name: &str) -> String {
    format!("{}{name}", prefix(kind, namespace))
}

/// The key prefix of a kind (in one namespace, or all of them).
pub fn prefix(kind: &ResourceKind, namespace: Option<&str>) -> String {
    match namespace.filter(|_| kind.namespaced) {
        Some(ns) => format!("/registry/{}/{}/{ns}/", kind.group_label(), kind.plural),
        None => format!("/registry/{}/{}/", kind.group_label(), kind.plural),
    }
}

/// The kind a store key belongs to.
pub fn kind_of_key(key: &str) -> Option<&'static ResourceKind> {
    let mut parts = key.strip_prefix("/registry/")?.split('/');
    let (group, plural) = (parts.next()?, parts.next()?);
    resources::all().into_iter().find(|k| k.group_label() == group && k.plural == plural)
}

/// The object stored in `kv`, with its resourceVersion.
pub fn decode(kv: &KeyValue) -> Result<Value, ApiError> {
    let mut obj: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("stored object {} is not JSON: {e}", kv.key)))?;
    meta::set_resource_version(&mut obj, kv.mod_revision);
    Ok(obj)
}

/// The bytes stored for `obj` (resourceVersion lives in the store's revision, not the value).
fn encode(obj: &Value) -> Vec<u8> {
    let mut obj = obj.clone();
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    serde_json::to_vec(&obj).unwrap_or_default()
}
