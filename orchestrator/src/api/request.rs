//! Typed API requests: what the HTTP layer parses a request into and the engine executes.

use std::time::Duration;

use serde_json::Value;

use super::error::ApiError;
use super::resources::{ResourceKind, Subresource};
use super::selector::{FieldSelector, LabelSelector};
use super::table::IncludeObject;

/// The group every authenticated user is in.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";

/// Who is asking, after authentication (and impersonation).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct User {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    /// Extra attributes (an impersonator's `Impersonate-Extra-*`).
    pub extra: std::collections::BTreeMap<String, Vec<String>>,
}

impl User {
    /// The identity in-process components act as.
    pub fn system(name: &str) -> Self {
        Self { name: name.into(), groups: vec!["system:masters".into()], ..Default::default() }
    }
    pub fn in_group(&self, g: &str) -> bool {
        self.groups.iter().any(|x| x == g)
    }
}

#[derive(Debug, Clone)]
pub struct Target {
    pub kind: &'static ResourceKind,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<Subresource>,
}

/// How to render objects in an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Object,
    Table(IncludeObject),
}

#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub label_selector: LabelSelector,
    pub field_selector: FieldSelector,
    pub limit: usize,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    /// How `resource_version` bounds a list (Kubernetes' `resourceVersionMatch`).
    pub resource_version_match: Option<ResourceVersionMatch>,
    pub timeout: Option<Duration>,
    pub allow_bookmarks: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceVersionMatch {
    /// The list as of exactly that revision.
    Exact,
    /// Any state at least as new as that revision.
    NotOlderThan,
}

impl ResourceVersionMatch {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exact => "Exact",
            Self::NotOlderThan => "NotOlderThan",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    Ignore,
    #[default]
    Warn,
    Strict,
}

#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    pub dry_run: bool,
    pub field_manager: Option<String>,
    pub field_validation: FieldValidation,
    /// Server-side apply: take ownership of conflicting fields.
    pub force: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Orphan,
    Background,
    Foreground,
}

#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub propagation: Option<Propagation>,
    pub grace_period: Option<i64>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub dry_run: bool,
}

/// DeleteOptions from a request's query and its (optional) JSON body, or from the
/// `deleteOptions` of an Eviction (with an empty query).
pub fn delete_options(
    q: &std::collections::HashMap<String, String>,
    body: Option<&Value>,
) -> Result<DeleteOptions, ApiError> {
    let get = |k: &str| -> Option<Value> {
        body.and_then(|b| b.get(k))
            .filter(|v| !v.is_null())
            .cloned()
            .or_else(|| q.get(k).map(|s| Value::String(s.clone())))
    };
    let orphan = get("orphanDependents").and_then(|v| match v {
        Value::Bool(b) => Some(b),
        Value::String(s) => s.parse().ok(),
        _ => None,
    });
    let propagation = match get("propagationPolicy").as_ref().and_then(Value::as_str) {
        None => orphan.map(|o| if o { Propagation::Orphan } else { Propagation::Background }),
        Some(_) if orphan.is_some() => {
            return Err(ApiError::new(
                422,
                "Invalid",
                "DeleteOptions: orphanDependents and deletionPropagation cannot be both set",
            ));
        }
        Some("Orphan") => Some(Propagation::Orphan),
        Some("Background") => Some(Propagation::Background),
        Some("Foreground") => Some(Propagation::Foreground),
        Some(other) => {
            return Err(ApiError::bad_request(format!("unknown propagationPolicy {other:?}")));
        }
    };
    let grace_period = match get("gracePeriodSeconds") {
        None => None,
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => Some(s.parse().map_err(|_| {
            ApiError::bad_request(format!("gracePeriodSeconds: invalid value {s:?}"))
        })?),
        Some(_) => return Err(ApiError::bad_request("gracePeriodSeconds must be an integer")),
    };
    let pre = body.map(|b| b["preconditions"].clone()).unwrap_or(Value::Null);
    let dry_run = match get("dryRun") {
        Some(Value::Array(a)) => a.iter().any(|x| x == "All"),
        Some(Value::String(s)) => s == "All",
        _ => false,
    };
    Ok(DeleteOptions {
        propagation,
        grace_period,
        precondition_uid: pre["uid"].as_str().map(str::to_owned),
        precondition_rv: pre["resourceVersion"].as_str().map(str::to_owned),
        dry_run,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

#[derive(Debug, Clone)]
pub enum Operation {
    Get,
    List(ListOptions),
    Watch(ListOptions),
    Create { body: Value, opts: WriteOptions },
    Update { body: Value, opts: WriteOptions },
    Patch { patch_type: PatchType, patch: Value, opts: WriteOptions },
    Delete(DeleteOptions),
    DeleteCollection(ListOptions, DeleteOptions),
}

impl Operation {
    /// The RBAC verb.
    pub fn verb(&self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::List(_) => "list",
            Self::Watch(_) => "watch",
            Self::Create { .. } => "create",
            Self::Update { .. } => "update",
            Self::Patch { .. } => "patch",
            Self::Delete(_) => "delete",
            Self::DeleteCollection(..) => "deletecollection",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub target: Target,
    pub op: Operation,
    pub format: Format,
}
