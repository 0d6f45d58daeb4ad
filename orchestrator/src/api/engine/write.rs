//! create, update and patch: admission (defaults, validation, namespace lifecycle), metadata
//! the server owns, status subresource rules, and compare-and-swap against the store.

use std::net::Ipv4Addr;

use serde_json::{Value, json};

use super::limit_ranger;
use super::node_port;
use super::retry::{Retry, until_applied};
use super::{Api, ApiResponse, body, decode, encode, key, prefix};
use crate::api::error::ApiError;
use crate::api::request::{PatchType, Target, User, WriteOptions};
use crate::api::resources::{ResourceKind, Subresource};
use crate::api::{certificate_requests, defaults, managed, meta, patch, validation};
use crate::store::{self, Revision};

/// Which part of an object a write goes through, and whether it records field ownership
/// (server-side apply records its own).
#[derive(Debug, Clone, Copy)]
pub(super) struct How {
    pub sub: Option<Subresource>,
    pub record: bool,
}

/// Who owns the fields a write sets.
fn manager(opts: &WriteOptions) -> &str {
    opts.field_manager.as_deref().filter(|m| !m.is_empty()).unwrap_or("unknown")
}

/// Options of writes the server makes itself.
fn internal() -> WriteOptions {
    WriteOptions { field_manager: Some("ringfence-controller".into()), ..Default::default() }
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let id = uuid::Uuid::new_v4();
    id.as_bytes().iter().take(5).map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect()
}

/// Whether a kind's `.status` is written only through its status subresource.
fn status_is_separate(kind: &ResourceKind) -> bool {
    kind.has(Subresource::Status)
}

/// The part of an object that bumps `metadata.generation` when it changes.
fn spec_of(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    o
}

impl Api {
    async fn check_namespace(&self, kind: &ResourceKind, ns: Option<&str>) -> Result<(), ApiError> {
        if !kind.namespaced {
            return Ok(());
        }
        let ns = ns.ok_or_else(|| {
            ApiError::bad_request("a namespace is required for namespaced resources")
        })?;
        let nskind = crate::api::resources::find("", "v1", "namespaces")
            .ok_or_else(|| ApiError::internal("no namespaces"))?;
        match self.store.get(&key(nskind, None, ns)).await {
            Ok(Some(kv)) => {
                if meta::is_deleting(&decode(&kv)?) {
                    return Err(ApiError::forbidden(format!(
                        "unable to create new content in namespace {ns} because it is being terminated"
                    )));
                }
                Ok(())
            }
            Ok(None) => Err(ApiError::not_found(nskind, ns)),
            Err(e) => Err(ApiError::from_store(e, nskind, ns)),
        }
    }

    async fn assign_cluster_ip(&self, obj: &mut Value) -> Result<(), ApiError> {
        let spec = &obj["spec"];
        if spec["type"] == "ExternalName" || spec["clusterIP"] == "None" {
            return Ok(());
        }
        let want = match spec["clusterIP"].as_str() {
            None | Some("") => None,
            Some(s) => Some(s.parse::<Ipv4Addr>().map_err(|_| {
                ApiError::bad_request(format!(
                    "spec.clusterIP: Invalid value: {s:?}: must be a valid IP address"
                ))
            })?),
        };
        let store = self.store.clone();
        let load = || async move {
            let Some(svc) = crate::api::resources::find("", "v1", "services") else {
                return Vec::new();
            };
            let Ok(list) = store.list(&prefix(svc, None), store::ListOptions::default()).await
            else {
                return Vec::new();
            };
            list.items
                .iter()
                .filter_map(|kv| serde_json::from_slice::<Value>(&kv.value).ok())
                .filter_map(|o| o["spec"]["clusterIP"].as_str()?.parse().ok())
                .collect()
        };
        let ip =
            self.ips.allocate(want, load).await.map_err(|m| ApiError::new(422, "Invalid", m))?;
        obj["spec"]["clusterIP"] = json!(ip.to_string());
        obj["spec"]["clusterIPs"] = json!([ip.to_string()]);
        Ok(())
    }

    /// Chooses `svc`'s node ports against every other stored Service; `previous` is the
    /// Service as stored before this write. The caller holds `self.node_ports`.
    async fn assign_node_ports(
        &self,
        svc: &mut Value,
        previous: Option<&Value>,
        name: &str,
    ) -> Result<(), ApiError> {
        let kind = crate::api::resources::find("", "v1", "services")
            .ok_or_else(|| ApiError::internal("the services resource is missing"))?;
        let list = self
            .store
            .list(&prefix(kind, None), store::ListOptions::default())
            .await
            .map_err(|e| ApiError::from_store(e, kind, name))?;
        let me = (meta::namespace(svc).map(str::to_owned), meta::name(svc).to_owned());
        let others: Vec<Value> = list
            .items
            .iter()
            .filter_map(|kv| serde_json::from_slice::<Value>(&kv.value).ok())
            .filter(|o| (meta::namespace(o).map(str::to_owned), meta::name(o).to_owned()) != me)
            .collect();
        let used = node_port::in_use(others.iter());
        let causes = node_port::assign(svc, previous, &used);
        if causes.is_empty() { Ok(()) } else { Err(ApiError::invalid(kind, name, causes)) }
    }

    pub(super) async fn release_cluster_ip(&self, obj: &Value) {
        if let Some(ip) = obj["spec"]["clusterIP"].as_str().and_then(|s| s.parse().ok()) {
            self.ips.release(ip).await;
        }
    }

    pub(super) async fn create(
        &self,
        user: &User,
        t: &Target,
        body: Value,
        opts: &WriteOptions,
    ) -> Result<ApiResponse, ApiError> {
        self.create_as(user, t, body, opts, true).await
    }

    async fn create_as(
        &self,
        user: &User,
        t: &Target,
        body: Value,
        opts: &WriteOptions,
        record: bool,
    ) -> Result<ApiResponse, ApiError> {
        let kind = t.kind;
        let mut warnings = Vec::new();
        let mut obj = body::check(kind, body, opts.field_validation, &mut warnings)?;
        let m = meta::metadata_mut(&mut obj);
        if kind.namespaced {
            match (m.get("namespace").and_then(Value::as_str), t.namespace.as_deref()) {
                (Some(b), Some(u)) if !b.is_empty() && b != u => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                (_, Some(u)) => {
                    m.insert("namespace".into(), json!(u));
                }
                (_, None) => {
                    return Err(ApiError::bad_request(
                        "a namespace is required to create this object",
                    ));
                }
            }
        } else {
            m.remove("namespace");
        }
        let name = match m.get("name").and_then(Value::as_str).filter(|s| !s.is_empty()) {
            Some(n) => n.to_owned(),
            None => match m.get("generateName").and_then(Value::as_str).filter(|s| !s.is_empty()) {
                Some(g) => format!("{g}{}", random_suffix()),
                None => {
                    return Err(ApiError::invalid(
                        kind,
                        "",
                        vec![crate::api::error::Cause::required("metadata.name")],
                    ));
                }
            },
        };
        m.insert("name".into(), json!(name));
        m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        m.insert("creationTimestamp".into(), json!(meta::now_rfc3339()));
        m.insert("generation".into(), json!(1));
        for k in ["resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"]
        {
            m.remove(k);
        }
        if status_is_separate(kind)
            && let Some(o) = obj.as_object_mut()
        {
            o.remove("status");
        }
        if certificate_requests::is_csr(kind.group, kind.kind) {
            certificate_requests::stamp_requester(user, &mut obj);
        }
        if record {
            managed::record_update(kind, None, &mut obj, manager(opts), "");
        }
        defaults::apply(kind, &mut obj);
        let is_pod = kind.group.is_empty() && kind.kind == "Pod";
        let ns = t.namespace.as_deref().unwrap_or_default();
        let limit_ranges =
            if is_pod { self.default_from_limit_ranges(&mut obj, ns).await? } else { Vec::new() };
        let causes = validation::validate(kind, &obj);
        if !causes.is_empty() {
            return Err(ApiError::invalid(kind, &name, causes));
        }
        self.check_namespace(kind, t.namespace.as_deref()).await?;
        if is_pod {
            self.admit_priority(&mut obj).await?;
            self.admit_runtime_class(&mut obj).await?;
            self.admit_service_account(&mut obj).await?;
            limit_ranger::check_limit_ranges(&obj, &name, &limit_ranges)?;
        }
        if kind.group.is_empty() && kind.kind == "PersistentVolumeClaim" {
            self.check_claim_limits(&obj, &name, ns).await?;
        }
        if kind.namespaced {
            self.charge_quotas(kind, &obj, ns, opts.dry_run).await?;
        }
        let is_service = kind.group.is_empty() && kind.kind == "Service";
        if opts.dry_run {
            return Ok(ApiResponse::Object { code: 201, body: obj, warnings });
        }
        let k = key(kind, t.namespace.as_deref(), &name);
        if is_service {
            // An existing name is a 409, not an address clash.
            if matches!(self.store.get(&k).await, Ok(Some(_))) {
                return Err(ApiError::already_exists(kind, &name));
            }
            self.assign_cluster_ip(&mut obj).await?;
        }
        let _node_ports = if is_service {
            let guard = self.node_ports.lock().await;
            if let Err(e) = self.assign_node_ports(&mut obj, None, &name).await {
                self.release_cluster_ip(&obj).await;
                return Err(e);
            }
            Some(guard)
        } else {
            None
        };
        match self.store.create(&k, encode(&obj)).await {
            Ok(kv) => Ok(ApiResponse::Object { code: 201, body: decode(&kv)?, warnings }),
            Err(e) => {
                if is_service {
                    self.release_cluster_ip(&obj).await;
                }
                Err(ApiError::from_store(e, kind, &name))
            }
        }
    }

    pub(super) async fn update(
        &self,
        _user: &User,
        t: &Target,
        body: Value,
        opts: &WriteOptions,
        sub: Option<Subresource>,
    ) -> Result<ApiResponse, ApiError> {
        let kind = t.kind;
        let name = t.name.clone().unwrap_or_default();
        let mut warnings = Vec::new();
        let new = body::check(kind, body, opts.field_validation, &mut warnings)?;
        if meta::name(&new) != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta::name(&new)
            )));
        }
        let wanted_rv = meta::resource_version(&new)
            .map(|s| {
                s.parse::<Revision>()
                    .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {s:?}")))
            })
            .transpose()?;
        // Without a resourceVersion the update is unconditional: lost races are retried (a
        // named resourceVersion meets its check on the next attempt).
        let (new, name) = (&new, name.as_str());
        let stored = until_applied(|| async move {
            let (current, rev) = self.load(kind, t.namespace.as_deref(), name).await?;
            if wanted_rv.is_some_and(|w| w != rev) {
                return Err(ApiError::conflict(
                    kind,
                    name,
                    "the object has been modified; please apply your changes to the latest version and try again",
                ));
            }
            let how = How { sub, record: true };
            self.store_update(t, &current, rev, new.clone(), opts, how).await
        })
        .await?;
        Ok(ApiResponse::Object { code: 200, body: stored, warnings })
    }

    /// Writes `new` over `current` (read at `rev`): server-owned metadata carried over, status
    /// rules applied, defaults and validation, then compare-and-swap. A no-op writes nothing.
    pub(super) async fn store_update(
        &self,
        t: &Target,
        current: &Value,
        rev: Revision,
        mut new: Value,
        opts: &WriteOptions,
        how: How,
    ) -> Result<Value, ApiError> {
        let How { sub, record } = how;
        let kind = t.kind;
        let name = meta::name(current).to_owned();
        if certificate_requests::is_csr(kind.group, kind.kind) {
            new = certificate_requests::admit_update(current, new, sub)
                .map_err(|causes| ApiError::invalid(kind, &name, causes))?;
        }
        // Which parts this write may change: a status-like subresource writes the status.
        let status_write = matches!(sub, Some(Subresource::Status | Subresource::Approval));
        if status_is_separate(kind) {
            let keep_from_current: &[&str] = if status_write { &["spec"] } else { &["status"] };
            for field in keep_from_current {
                match current.get(*field) {
                    Some(v) => new[*field] = v.clone(),
                    None => {
                        if let Some(o) = new.as_object_mut() {
                            o.remove(*field);
                        }
                    }
                }
            }
            if status_write {
                new["metadata"] = current["metadata"].clone();
            }
        }
        {
            let m = meta::metadata_mut(&mut new);
            for k in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "namespace",
            ] {
                match current["metadata"].get(k) {
                    Some(v) => {
                        m.insert(k.into(), v.clone());
                    }
                    None => {
                        m.remove(k);
                    }
                }
            }
            m.remove("resourceVersion");
        }
        if kind.group.is_empty() && kind.kind == "Service" {
            let old_ip = &current["spec"]["clusterIP"];
            let new_ip = &new["spec"]["clusterIP"];
            if new_ip.is_null() || new_ip == "" {
                new["spec"]["clusterIP"] = old_ip.clone();
                new["spec"]["clusterIPs"] = current["spec"]["clusterIPs"].clone();
            } else if new_ip != old_ip {
                return Err(ApiError::invalid(
                    kind,
                    &name,
                    vec![crate::api::error::Cause::invalid(
                        "spec.clusterIPs[0]",
                        "Invalid value: field is immutable",
                    )],
                ));
            }
        }
        if record {
            let subresource = sub.map(|s| s.name()).unwrap_or("");
            managed::record_update(kind, Some(current), &mut new, manager(opts), subresource);
        }
        defaults::apply(kind, &mut new);
        if spec_of(&new) != spec_of(current) {
            let g = current["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            new["metadata"]["generation"] = json!(g);
        }
        let mut causes = validation::validate(kind, &new);
        if sub.is_none() {
            causes.extend(validation::immutable(kind, current, &new));
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid(kind, &name, causes));
        }
        let mut current_plain = current.clone();
        meta::metadata_mut(&mut current_plain).remove("resourceVersion");
        if new == current_plain || opts.dry_run {
            let mut out = if opts.dry_run { new } else { current.clone() };
            meta::set_resource_version(&mut out, rev);
            return Ok(out);
        }
        if sub.is_none() && kind.namespaced && !meta::is_deleting(&new) {
            self.charge_quota_growth(kind, current, &new, opts.dry_run).await?;
        }
        let k = key(kind, t.namespace.as_deref(), &name);
        let _node_ports = if kind.group.is_empty() && kind.kind == "Service" && sub.is_none() {
            let guard = self.node_ports.lock().await;
            self.assign_node_ports(&mut new, Some(current), &name).await?;
            Some(guard)
        } else {
            None
        };
        if meta::is_deleting(&new) && self.finalized(kind, &new) {
            let kv = self
                .store
                .delete(&k, Some(rev))
                .await
                .map_err(|e| ApiError::from_store(e, kind, &name))?;
            self.release_on_delete(kind, &new).await;
            return decode(&kv);
        }
        let kv = self
            .store
            .update(&k, encode(&new), rev)
            .await
            .map_err(|e| ApiError::from_store(e, kind, &name))?;
        decode(&kv)
    }

    pub(super) async fn patch(
        &self,
        user: &User,
        t: &Target,
        patch_type: PatchType,
        patch_body: &Value,
        opts: &WriteOptions,
        sub: Option<Subresource>,
    ) -> Result<ApiResponse, ApiError> {
        let kind = t.kind;
        let name = t.name.clone().unwrap_or_default();
        let mut retry = Retry::default();
        loop {
            let (current, rev) = match self.load(kind, t.namespace.as_deref(), &name).await {
                Ok(c) => c,
                Err(e) if e.code == 404 && patch_type == PatchType::Apply => {
                    let applied = self.applied_config(t, patch_body, opts)?;
                    let obj = managed::apply(kind, None, &applied, manager(opts), opts.force)
                        .map_err(|c| {
                            ApiError::new(409, "Conflict", managed::conflict_message(kind, &c))
                        })?;
                    return self.create_as(user, t, obj, opts, false).await;
                }
                Err(e) => return Err(e),
            };
            let patched = match patch_type {
                PatchType::Json => patch::json_patch(&current, patch_body),
                PatchType::Merge => patch::merge_patch(&current, patch_body),
                PatchType::Strategic => patch::strategic_merge(&current, patch_body, kind),
                PatchType::Apply => {
                    let applied = self.applied_config(t, patch_body, opts)?;
                    match managed::apply(kind, Some(&current), &applied, manager(opts), opts.force)
                    {
                        Ok(v) => Ok(v),
                        Err(c) => {
                            return Err(ApiError::new(
                                409,
                                "Conflict",
                                managed::conflict_message(kind, &c),
                            ));
                        }
                    }
                }
            }
            .map_err(|m| ApiError::new(422, "Invalid", m))?;
            let mut warnings = Vec::new();
            let patched = body::check(kind, patched, opts.field_validation, &mut warnings)?;
            if meta::name(&patched) != name {
                return Err(ApiError::bad_request("the patch must not change metadata.name"));
            }
            if let Some(p) = meta::resource_version(&patched)
                && p != rev.to_string()
            {
                return Err(ApiError::conflict(
                    kind,
                    &name,
                    "the object has been modified; please apply your changes to the latest version and try again",
                ));
            }
            let record = patch_type != PatchType::Apply;
            match self.store_update(t, &current, rev, patched, opts, How { sub, record }).await {
                Ok(obj) => return Ok(ApiResponse::Object { code: 200, body: obj, warnings }),
                // Someone wrote in between: patch the fresh object. A patch that names a
                // resourceVersion meets the check above with the new one and gets its 409 there.
                Err(e) if retry.again(&e).await => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// A server-side apply body, checked like any object of its kind.
    fn applied_config(
        &self,
        t: &Target,
        body: &Value,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let mut warnings = Vec::new();
        let applied = body::check(t.kind, body.clone(), opts.field_validation, &mut warnings)?;
        let name = t.name.as_deref().unwrap_or("");
        if meta::name(&applied) != name {
            return Err(ApiError::bad_request(format!(
                "the name of the applied object ({}) does not match the name on the URL ({name})",
                meta::name(&applied)
            )));
        }
        if let (Some(want), Some(got)) = (t.namespace.as_deref(), meta::namespace(&applied))
            && want != got
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        Ok(applied)
    }

    /// Whether a deleting object has no finalizers left (namespaces also wait for theirs).
    pub(super) fn finalized(&self, kind: &ResourceKind, obj: &Value) -> bool {
        let spec_done = !(kind.group.is_empty() && kind.kind == "Namespace")
            || obj["spec"]["finalizers"].as_array().is_none_or(|a| a.is_empty());
        meta::finalizers(obj).is_empty() && spec_done
    }

    pub(super) async fn release_on_delete(&self, kind: &ResourceKind, obj: &Value) {
        if kind.group.is_empty() && kind.kind == "Service" {
            self.release_cluster_ip(obj).await;
        }
    }
}

impl Api {
    /// Read-modify-write of one object by in-process components (garbage collector, namespace
    /// lifecycle): `f` edits the object; retried on conflicts.
    pub async fn modify(
        &self,
        kind: &'static ResourceKind,
        ns: Option<&str>,
        name: &str,
        f: impl Fn(&mut Value),
    ) -> Result<Value, ApiError> {
        let t = Target {
            kind,
            namespace: ns.map(str::to_owned),
            name: Some(name.to_owned()),
            subresource: None,
        };
        let mut retry = Retry::default();
        loop {
            let (current, rev) = self.load(kind, ns, name).await?;
            let mut new = current.clone();
            f(&mut new);
            // Internal edits may touch status and finalizers alike.
            let sub = if status_is_separate(kind) && new["status"] != current["status"] {
                Some(Subresource::Status)
            } else {
                None
            };
            if sub.is_some() && spec_of(&new) != spec_of(&current) {
                return Err(ApiError::internal(
                    "an internal edit may not change spec and status at once",
                ));
            }
            let result = if sub.is_some() {
                let mut merged = new.clone();
                merged["metadata"] = current["metadata"].clone();
                self.store_update(&t, &current, rev, merged, &internal(), How { sub, record: true })
                    .await
            } else {
                self.store_update(
                    &t,
                    &current,
                    rev,
                    new,
                    &internal(),
                    How { sub: None, record: true },
                )
                .await
            };
            match result {
                Err(e) if retry.again(&e).await => {}
                r => return r,
            }
        }
    }
}
