//! A typed client over [`Client`]: k8s-openapi structs in, k8s-openapi structs out.

use std::pin::Pin;
use std::sync::Arc;

use futures_util::{Stream, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, WatchEvent};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::client::Client;
use crate::api::engine::WatchEvents;
use crate::api::request::{DeleteOptions, Format, ListOptions, PatchType, WriteOptions};
use crate::api::resources::{self, ResourceKind, Subresource};
use crate::api::selector::LabelSelector;
use crate::api::{ApiError, ApiRequest, ApiResponse, Operation, Target};

/// A Kubernetes object type the client can read and write.
pub trait Object:
    k8s_openapi::Resource
    + k8s_openapi::Metadata<Ty = ObjectMeta>
    + Serialize
    + DeserializeOwned
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<K> Object for K where
    K: k8s_openapi::Resource
        + k8s_openapi::Metadata<Ty = ObjectMeta>
        + Serialize
        + DeserializeOwned
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// The events of a typed watch, in order; it ends when the server ends the watch.
pub type TypedWatch<K> = Pin<Box<dyn Stream<Item = Result<WatchEvent<K>, ApiError>> + Send>>;

/// The resource table's entry for `K`.
pub fn kind_of<K: Object>() -> &'static ResourceKind {
    resources::find_kind(K::GROUP, K::KIND)
        .unwrap_or_else(|| panic!("{} is not in the resource table", K::KIND))
}

fn decode<K: DeserializeOwned>(v: Value) -> Result<K, ApiError> {
    serde_json::from_value(v).map_err(|e| ApiError::internal(format!("decoding an answer: {e}")))
}

fn encode<K: Serialize>(obj: &K) -> Result<Value, ApiError> {
    serde_json::to_value(obj).map_err(|e| ApiError::internal(format!("encoding: {e}")))
}

#[derive(Clone)]
pub struct Kube {
    client: Arc<dyn Client>,
    manager: String,
}

impl Kube {
    /// Writes are recorded with `manager` as their field manager.
    pub fn new(client: Arc<dyn Client>, manager: &str) -> Self {
        Self { client, manager: manager.to_owned() }
    }

    /// The same client under another field manager.
    pub fn named(&self, manager: &str) -> Self {
        Self { client: self.client.clone(), manager: manager.to_owned() }
    }

    fn write_opts(&self) -> WriteOptions {
        WriteOptions { field_manager: Some(self.manager.clone()), ..Default::default() }
    }

    pub async fn raw(
        &self,
        kind: &'static ResourceKind,
        namespace: Option<&str>,
        name: Option<&str>,
        subresource: Option<Subresource>,
        op: Operation,
    ) -> Result<Value, ApiError> {
        let target = Target {
            kind,
            namespace: namespace.map(str::to_owned),
            name: name.map(str::to_owned),
            subresource,
        };
        match self.client.execute(ApiRequest { target, op, format: Format::Object }).await? {
            ApiResponse::Object { body, .. } => Ok(body),
            ApiResponse::List(list) => Ok(list.into_value()),
            ApiResponse::Watch(_) => Err(ApiError::internal("a watch answered a plain request")),
        }
    }

    pub async fn get<K: Object>(
        &self,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Option<K>, ApiError> {
        match self.raw(kind_of::<K>(), ns, Some(name), None, Operation::Get).await {
            Ok(v) => decode(v).map(Some),
            Err(e) if e.code == 404 => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every object of `kind` (in `ns`, or everywhere) and the list's resourceVersion.
    pub async fn list_raw(
        &self,
        kind: &'static ResourceKind,
        ns: Option<&str>,
        selector: LabelSelector,
    ) -> Result<(Vec<Value>, String), ApiError> {
        let opts = ListOptions { label_selector: selector, ..Default::default() };
        self.list_raw_with(kind, ns, opts).await
    }

    async fn list_raw_with(
        &self,
        kind: &'static ResourceKind,
        ns: Option<&str>,
        opts: ListOptions,
    ) -> Result<(Vec<Value>, String), ApiError> {
        let mut v = self.raw(kind, ns, None, None, Operation::List(opts)).await?;
        let rv = v["metadata"]["resourceVersion"].as_str().unwrap_or("0").to_owned();
        let items = match v["items"].take() {
            Value::Array(items) => items,
            _ => Vec::new(),
        };
        Ok((items, rv))
    }

    pub async fn list<K: Object>(&self, ns: Option<&str>) -> Result<Vec<K>, ApiError> {
        let (items, _) = self.list_raw(kind_of::<K>(), ns, LabelSelector::default()).await?;
        items.into_iter().map(decode).collect()
    }

    /// The objects of `K` that `opts` selects (label and field selectors), and the list's
    /// resourceVersion to watch from.
    pub async fn list_selected<K: Object>(
        &self,
        ns: Option<&str>,
        opts: ListOptions,
    ) -> Result<(Vec<K>, String), ApiError> {
        let (items, rv) = self.list_raw_with(kind_of::<K>(), ns, opts).await?;
        let items = items.into_iter().map(decode).collect::<Result<_, _>>()?;
        Ok((items, rv))
    }

    /// Typed changes to the objects of `K` that `opts` selects, after `opts.resource_version`.
    /// An event whose object does not decode arrives as an error; the stream goes on.
    pub async fn watch_selected<K: Object>(
        &self,
        ns: Option<&str>,
        opts: ListOptions,
    ) -> Result<TypedWatch<K>, ApiError> {
        let target = Target {
            kind: kind_of::<K>(),
            namespace: ns.map(str::to_owned),
            name: None,
            subresource: None,
        };
        let req = ApiRequest { target, op: Operation::Watch(opts), format: Format::Object };
        match self.client.execute(req).await? {
            ApiResponse::Watch(events) => Ok(Box::pin(events.map(|v| {
                serde_json::from_value::<WatchEvent<K>>(v)
                    .map_err(|e| ApiError::internal(format!("decoding a watch event: {e}")))
            }))),
            _ => Err(ApiError::internal("a watch answered an object")),
        }
    }

    /// Changes to `kind` after `resource_version` (with bookmarks).
    pub async fn watch(
        &self,
        kind: &'static ResourceKind,
        resource_version: &str,
    ) -> Result<WatchEvents, ApiError> {
        let opts = ListOptions {
            resource_version: Some(resource_version.to_owned()),
            allow_bookmarks: true,
            ..Default::default()
        };
        let target = Target { kind, namespace: None, name: None, subresource: None };
        let req = ApiRequest { target, op: Operation::Watch(opts), format: Format::Object };
        match self.client.execute(req).await? {
            ApiResponse::Watch(w) => Ok(w),
            _ => Err(ApiError::internal("a watch answered an object")),
        }
    }

    pub async fn create<K: Object>(&self, obj: &K) -> Result<K, ApiError> {
        let ns = obj.metadata().namespace.clone();
        let op = Operation::Create { body: encode(obj)?, opts: self.write_opts() };
        decode(self.raw(kind_of::<K>(), ns.as_deref(), None, None, op).await?)
    }

    /// Creates the object, or replaces the one of its name (keeping that one's metadata): for
    /// objects a single writer republishes whole, such as metrics.
    pub async fn create_or_replace<K: Object>(&self, mut obj: K) -> Result<K, ApiError> {
        let (ns, name) = (obj.metadata().namespace.clone(), obj.metadata().name.clone());
        match self.get::<K>(ns.as_deref(), name.as_deref().unwrap_or_default()).await? {
            Some(old) => {
                *obj.metadata_mut() = old.metadata().clone();
                self.update(&obj).await
            }
            None => self.create(&obj).await,
        }
    }

    /// Replaces the object (compare-and-swap on its resourceVersion).
    pub async fn update<K: Object>(&self, obj: &K) -> Result<K, ApiError> {
        self.put(obj, None).await
    }

    /// Replaces the object's status (compare-and-swap on its resourceVersion).
    pub async fn update_status<K: Object>(&self, obj: &K) -> Result<K, ApiError> {
        self.put(obj, Some(Subresource::Status)).await
    }

    async fn put<K: Object>(&self, obj: &K, sub: Option<Subresource>) -> Result<K, ApiError> {
        let m = obj.metadata();
        let op = Operation::Update { body: encode(obj)?, opts: self.write_opts() };
        let v =
            self.raw(kind_of::<K>(), m.namespace.as_deref(), m.name.as_deref(), sub, op).await?;
        decode(v)
    }

    pub async fn patch<K: Object>(
        &self,
        ns: Option<&str>,
        name: &str,
        patch_type: PatchType,
        patch: Value,
        sub: Option<Subresource>,
    ) -> Result<K, ApiError> {
        let op = Operation::Patch { patch_type, patch, opts: self.write_opts() };
        decode(self.raw(kind_of::<K>(), ns, Some(name), sub, op).await?)
    }

    /// Writes the object's status through the status subresource (a merge patch of `status`,
    /// so fields left out keep their stored values).
    pub async fn patch_status<K: Object, S: Serialize>(
        &self,
        ns: Option<&str>,
        name: &str,
        status: &S,
    ) -> Result<K, ApiError> {
        let patch = json!({ "status": encode(status)? });
        self.patch(ns, name, PatchType::Merge, patch, Some(Subresource::Status)).await
    }

    /// Deletes; an object already gone is not an error. Returns the object as the server last
    /// had it (marked for deletion, or with the deletion's resourceVersion), if it existed.
    pub async fn delete<K: Object>(
        &self,
        ns: Option<&str>,
        name: &str,
        opts: DeleteOptions,
    ) -> Result<Option<K>, ApiError> {
        match self.raw(kind_of::<K>(), ns, Some(name), None, Operation::Delete(opts)).await {
            Ok(v) if v["kind"] == "Status" => Ok(None),
            Ok(v) => decode(v).map(Some),
            Err(e) if e.code == 404 => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Binds a pod to a node through the binding subresource.
    pub async fn bind(&self, ns: &str, pod: &str, uid: &str, node: &str) -> Result<(), ApiError> {
        let kind = resources::find("", "v1", "pods").ok_or_else(|| ApiError::internal("pods"))?;
        let body = json!({
            "apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": pod, "namespace": ns, "uid": uid},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        });
        let op = Operation::Create { body, opts: self.write_opts() };
        self.raw(kind, Some(ns), Some(pod), Some(Subresource::Binding), op).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use k8s_openapi::api::core::v1::{Container, Namespace, Pod, PodSpec, PodStatus};

    use super::*;
    use crate::api::selector::FieldSelector;
    use crate::api::{Api, ApiConfig};
    use crate::kube::InProcess;
    use crate::store::EmbeddedStore;

    fn pod(name: &str, node: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some(node.into()),
                containers: vec![Container {
                    name: "c".into(),
                    image: Some("busybox".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: None,
        }
    }

    async fn next(events: &mut TypedWatch<Pod>) -> WatchEvent<Pod> {
        match tokio::time::timeout(Duration::from_secs(5), events.next()).await {
            Ok(Some(Ok(ev))) => ev,
            Ok(Some(Err(e))) => panic!("undecodable event: {e}"),
            _ => panic!("no event"),
        }
    }

    fn on_node(node: &str) -> ListOptions {
        let terms = vec![("spec.nodeName".to_owned(), true, node.to_owned())];
        ListOptions { field_selector: FieldSelector(terms), ..Default::default() }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn field_selected_lists_watches_and_status_writes_are_typed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EmbeddedStore::open(&dir.path().join("s.redb")).unwrap());
        let kube = Kube::new(InProcess::new(Api::new(store, ApiConfig::default()), "t"), "t");
        let ns = Namespace {
            metadata: ObjectMeta { name: Some("default".into()), ..Default::default() },
            ..Default::default()
        };
        kube.create(&ns).await.unwrap();
        kube.create(&pod("a", "n1")).await.unwrap();
        kube.create(&pod("b", "n2")).await.unwrap();

        let (pods, rv) = kube.list_selected::<Pod>(None, on_node("n1")).await.unwrap();
        let names: Vec<_> = pods.iter().map(|p| p.metadata.name.clone().unwrap()).collect();
        assert_eq!(names, ["a"]);

        let mut opts = on_node("n1");
        opts.resource_version = Some(rv);
        let mut events = kube.watch_selected::<Pod>(None, opts).await.unwrap();
        kube.create(&pod("c", "n2")).await.unwrap();
        kube.create(&pod("d", "n1")).await.unwrap();
        let status = PodStatus { phase: Some("Running".into()), ..Default::default() };
        let written: Pod = kube.patch_status(Some("default"), "d", &status).await.unwrap();
        assert_eq!(written.status.and_then(|s| s.phase).as_deref(), Some("Running"));

        // Only n1's pod shows up, first added, then with its status.
        let WatchEvent::Added(p) = next(&mut events).await else { panic!("expected ADDED") };
        assert_eq!(p.metadata.name.as_deref(), Some("d"));
        let WatchEvent::Modified(p) = next(&mut events).await else { panic!("expected MODIFIED") };
        assert_eq!(p.status.and_then(|s| s.phase).as_deref(), Some("Running"));
    }
}
