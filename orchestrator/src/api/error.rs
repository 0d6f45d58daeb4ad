//! API errors and their Kubernetes `Status` bodies.

use serde_json::{Value, json};

use super::resources::ResourceKind;
use crate::store::StoreError;

/// One invalid field, reported in `details.causes`.
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    pub reason: &'static str,
    pub field: String,
    pub message: String,
}

impl Cause {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self { reason: "FieldValueInvalid", field: field.to_owned(), message: message.into() }
    }
    pub fn required(field: &str) -> Self {
        Self {
            reason: "FieldValueRequired",
            field: field.to_owned(),
            message: "Required value".into(),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    /// (group, kind or plural, name) for `details`.
    pub subject: Option<Box<(String, String, String)>>,
    pub causes: Vec<Cause>,
    /// A compare-and-swap lost to another write: the request itself named no stale version,
    /// so the server retries it on the fresh object instead of answering 409.
    pub lost_race: bool,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            subject: None,
            causes: Vec::new(),
            lost_race: false,
        }
    }

    fn about(mut self, kind: &ResourceKind, name: &str) -> Self {
        self.subject =
            Some(Box::new((kind.group.to_owned(), kind.plural.to_owned(), name.to_owned())));
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }
    pub fn not_found(kind: &ResourceKind, name: &str) -> Self {
        Self::new(404, "NotFound", format!("{} \"{name}\" not found", qualified(kind)))
            .about(kind, name)
    }
    pub fn no_route(path: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }
    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(406, "NotAcceptable", message)
    }
    pub fn already_exists(kind: &ResourceKind, name: &str) -> Self {
        Self::new(409, "AlreadyExists", format!("{} \"{name}\" already exists", qualified(kind)))
            .about(kind, name)
    }
    pub fn conflict(kind: &ResourceKind, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {} \"{name}\": {why}", qualified(kind)),
        )
        .about(kind, name)
    }
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("the request body is larger than {limit} bytes"),
        )
    }
    pub fn unsupported_media_type(ct: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format: {ct}"),
        )
    }
    pub fn invalid(kind: &ResourceKind, name: &str, causes: Vec<Cause>) -> Self {
        let list: Vec<String> =
            causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect();
        let gk = if kind.group.is_empty() {
            kind.kind.to_owned()
        } else {
            format!("{}.{}", kind.kind, kind.group)
        };
        let mut e =
            Self::new(422, "Invalid", format!("{gk} \"{name}\" is invalid: {}", list.join(", ")));
        e.subject = Some(Box::new((kind.group.to_owned(), kind.kind.to_owned(), name.to_owned())));
        e.causes = causes;
        e
    }
    pub fn too_many_requests(message: impl Into<String>, causes: Vec<Cause>) -> Self {
        Self { causes, ..Self::new(429, "TooManyRequests", message) }
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// The `Status` object for this error.
    pub fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(subject) = &self.subject {
            let (group, kind, name) = subject.as_ref();
            let mut details = json!({ "name": name, "kind": kind });
            if !group.is_empty() {
                details["group"] = json!(group);
            }
            if !self.causes.is_empty() {
                details["causes"] = self.causes_json();
            }
            status["details"] = details;
        } else if !self.causes.is_empty() {
            // A refusal about no one object (an eviction a budget forbids) still says why.
            status["details"] = json!({ "causes": self.causes_json() });
        } else if matches!(self.code, 404 | 409) {
            // Clients read `details` of these without checking it is there (kubectl debug).
            status["details"] = json!({});
        }
        status
    }

    fn causes_json(&self) -> Value {
        self.causes
            .iter()
            .map(|c| {
                let mut v = json!({ "reason": c.reason, "message": c.message });
                if !c.field.is_empty() {
                    v["field"] = json!(c.field);
                }
                v
            })
            .collect()
    }

    pub fn from_store(e: StoreError, kind: &ResourceKind, name: &str) -> Self {
        match e {
            StoreError::NotFound => Self::not_found(kind, name),
            StoreError::AlreadyExists => Self::already_exists(kind, name),
            StoreError::Conflict { .. } => Self {
                lost_race: true,
                ..Self::conflict(
                    kind,
                    name,
                    "the object has been modified; please apply your changes to the latest version and try again",
                )
            },
            StoreError::Compacted { requested, compacted } => {
                Self::gone(format!("too old resource version: {requested} ({compacted})"))
            }
            StoreError::FutureRevision(r) => {
                Self::new(504, "Timeout", format!("Too large resource version: {r}"))
            }
            StoreError::Backend(m) => Self::internal(m),
        }
    }
}

/// "deployments.apps" or "pods": how Kubernetes names a resource in messages.
fn qualified(kind: &ResourceKind) -> String {
    if kind.group.is_empty() {
        kind.plural.to_owned()
    } else {
        format!("{}.{}", kind.plural, kind.group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_and_conflict_statuses_always_carry_details() {
        let route = ApiError::no_route("/api/v1/nothing").status();
        assert_eq!(route["details"], json!({}), "{route}");
        let conflict = ApiError::new(409, "Conflict", "busy").status();
        assert_eq!(conflict["details"], json!({}), "{conflict}");
        assert!(ApiError::bad_request("x").status().get("details").is_none());
    }
}
