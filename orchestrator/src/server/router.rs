//! The route table: an HTTP method, path, query and headers parsed into a typed [`Route`]
//! (for resources, an [`ApiRequest`]). Nothing here touches the store.

use std::collections::HashMap;
use std::time::Duration;

use http::Method;
use serde_json::Value;

use crate::api::error::ApiError;
use crate::api::request::{
    ApiRequest, FieldValidation, Format, ListOptions, Operation, PatchType, ResourceVersionMatch,
    Target, WriteOptions, delete_options,
};
use crate::api::resources::{self, Subresource};
use crate::api::selector::{FieldSelector, LabelSelector};
use crate::api::table::IncludeObject;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Healthz,
    Livez,
    Readyz,
}

pub enum Route {
    Version,
    Health(Health),
    Metrics,
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/apis/<group>` (legacy group document)
    Group(String),
    /// `/api/v1`, `/apis/<group>/<version>`
    Resources {
        group: String,
        version: String,
    },
    OpenApiV3Root,
    OpenApiV3 {
        group: String,
        version: String,
    },
    OpenApiV2,
    Resource(Box<ApiRequest>),
}

/// The parts of an HTTP request a route needs.
pub struct RequestHead<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub query: &'a str,
    pub accept: &'a str,
    pub content_type: &'a str,
    pub user_agent: &'a str,
}

/// Percent-decoding for query strings ('+' is a space).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn parse_query(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn bool_param(q: &HashMap<String, String>, k: &str) -> bool {
    matches!(q.get(k).map(String::as_str), Some("true" | "1"))
}

fn format_of(accept: &str, q: &HashMap<String, String>) -> Format {
    if accept.split(',').any(|a| a.contains("as=Table") && a.contains("g=meta.k8s.io")) {
        let include = match q.get("includeObject").map(String::as_str) {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        };
        Format::Table(include)
    } else {
        Format::Object
    }
}

fn list_options(
    q: &HashMap<String, String>,
    kind: &'static resources::ResourceKind,
) -> Result<ListOptions, ApiError> {
    let label_selector =
        LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("unable to parse labelSelector: {e}")))?;
    let field_selector =
        FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or(""), kind)
            .map_err(|e| ApiError::bad_request(format!("unable to parse fieldSelector: {e}")))?;
    let limit = match q.get("limit") {
        Some(l) => l
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("limit: invalid value {l:?}")))?
            .max(0) as usize,
        None => 0,
    };
    let timeout =
        match q.get("timeoutSeconds") {
            Some(t) => Some(Duration::from_secs(t.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!("timeoutSeconds: invalid value {t:?}"))
            })?)),
            None => None,
        };
    let resource_version_match = match q.get("resourceVersionMatch").map(String::as_str) {
        None | Some("") => None,
        Some("Exact") => Some(ResourceVersionMatch::Exact),
        Some("NotOlderThan") => Some(ResourceVersionMatch::NotOlderThan),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "resourceVersionMatch: Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\""
            )));
        }
    };
    Ok(ListOptions {
        label_selector,
        field_selector,
        limit,
        continue_token: q.get("continue").filter(|c| !c.is_empty()).cloned(),
        resource_version: q.get("resourceVersion").cloned(),
        resource_version_match,
        timeout,
        allow_bookmarks: bool_param(q, "allowWatchBookmarks"),
    })
}

fn write_options(
    q: &HashMap<String, String>,
    default_manager: &str,
) -> Result<WriteOptions, ApiError> {
    let field_validation = match q.get("fieldValidation").map(String::as_str) {
        None | Some("") | Some("Warn") => FieldValidation::Warn,
        Some("Strict") => FieldValidation::Strict,
        Some("Ignore") => FieldValidation::Ignore,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "fieldValidation must be one of Ignore, Warn or Strict, not {other:?}"
            )));
        }
    };
    Ok(WriteOptions {
        dry_run: q.get("dryRun").is_some_and(|d| d == "All"),
        field_manager: Some(
            q.get("fieldManager").cloned().unwrap_or_else(|| default_manager.to_owned()),
        ),
        field_validation,
        force: bool_param(q, "force"),
    })
}

pub fn patch_type(content_type: &str) -> Result<PatchType, ApiError> {
    let ct = content_type.split(';').next().unwrap_or("").trim();
    match ct {
        "application/json-patch+json" => Ok(PatchType::Json),
        "application/merge-patch+json" => Ok(PatchType::Merge),
        "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
        "application/apply-patch+yaml" => Ok(PatchType::Apply),
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

/// A resource route whose body is still to be read; `finish` turns it into a request.
pub struct ResourceRoute {
    pub target: Target,
    /// The field manager when the request names none: the User-Agent's program name.
    pub default_manager: String,
    pub method: Method,
    pub query: HashMap<String, String>,
    pub format: Format,
    pub watch: bool,
}

impl ResourceRoute {
    /// Builds the request; `body` is the decoded request body, if the method carries one.
    pub fn finish(self, body: Option<Value>, content_type: &str) -> Result<ApiRequest, ApiError> {
        let q = &self.query;
        let t = &self.target;
        let need_body =
            || body.clone().ok_or_else(|| ApiError::bad_request("the request needs a body"));
        let op = match (&self.method, t.name.is_some()) {
            (&Method::GET, _) if self.watch => {
                let mut opts = list_options(q, t.kind)?;
                if let Some(name) = &t.name {
                    opts.field_selector.0.push(("metadata.name".into(), true, name.clone()));
                }
                Operation::Watch(opts)
            }
            (&Method::GET, true) => Operation::Get,
            (&Method::GET, false) => Operation::List(list_options(q, t.kind)?),
            (&Method::POST, _) => Operation::Create {
                body: need_body()?,
                opts: write_options(q, &self.default_manager)?,
            },
            (&Method::PUT, true) => Operation::Update {
                body: need_body()?,
                opts: write_options(q, &self.default_manager)?,
            },
            (&Method::PATCH, true) => {
                let pt = patch_type(content_type)?;
                let mut opts = write_options(q, &self.default_manager)?;
                if pt == PatchType::Apply && opts.field_manager.as_deref().is_none_or(str::is_empty)
                {
                    return Err(ApiError::bad_request(
                        "PATCH with apply-patch+yaml requires a fieldManager parameter",
                    ));
                }
                if pt != PatchType::Apply && opts.force {
                    return Err(ApiError::bad_request(
                        "force may only be given with apply-patch+yaml",
                    ));
                }
                opts.force = opts.force && pt == PatchType::Apply;
                Operation::Patch { patch_type: pt, patch: need_body()?, opts }
            }
            (&Method::DELETE, true) => Operation::Delete(delete_options(q, body.as_ref())?),
            (&Method::DELETE, false) => Operation::DeleteCollection(
                list_options(q, t.kind)?,
                delete_options(q, body.as_ref())?,
            ),
            (m, _) => {
                return Err(ApiError::method_not_allowed(format!("{m} is not supported here")));
            }
        };
        Ok(ApiRequest { target: self.target, op, format: self.format })
    }
}

pub enum Parsed {
    Route(Route),
    Resource(ResourceRoute),
}

pub fn parse(head: &RequestHead<'_>) -> Result<Parsed, ApiError> {
    let segs: Vec<&str> =
        head.path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let q = parse_query(head.query);
    let simple = |r: Route| Ok(Parsed::Route(r));
    match segs.as_slice() {
        ["version"] => simple(Route::Version),
        ["healthz", ..] => simple(Route::Health(Health::Healthz)),
        ["livez", ..] => simple(Route::Health(Health::Livez)),
        ["readyz", ..] => simple(Route::Health(Health::Readyz)),
        ["metrics"] => simple(Route::Metrics),
        ["api"] => simple(Route::CoreVersions),
        ["apis"] => simple(Route::Groups),
        ["openapi", "v3"] => simple(Route::OpenApiV3Root),
        ["openapi", "v3", "api", v] => {
            simple(Route::OpenApiV3 { group: String::new(), version: (*v).into() })
        }
        ["openapi", "v3", "apis", g, v] => {
            simple(Route::OpenApiV3 { group: (*g).into(), version: (*v).into() })
        }
        ["openapi", "v2"] => simple(Route::OpenApiV2),
        ["api", v] => simple(Route::Resources { group: String::new(), version: (*v).into() }),
        ["apis", g] => simple(Route::Group((*g).into())),
        ["apis", g, v] => simple(Route::Resources { group: (*g).into(), version: (*v).into() }),
        ["api", v, rest @ ..] => resource("", v, rest, head, q),
        ["apis", g, v, rest @ ..] => resource(g, v, rest, head, q),
        _ => Err(ApiError::no_route(head.path)),
    }
}

fn resource(
    group: &str,
    version: &str,
    rest: &[&str],
    head: &RequestHead<'_>,
    q: HashMap<String, String>,
) -> Result<Parsed, ApiError> {
    let mut rest = rest;
    let mut watch = bool_param(&q, "watch");
    if rest.first() == Some(&"watch") {
        watch = true;
        rest = &rest[1..];
    }
    let mut namespace = None;
    // namespaces/<ns>/<resource>... (but namespaces/<name>[/status] is the Namespace itself)
    if rest.len() >= 3
        && rest[0] == "namespaces"
        && resources::find(group, version, rest[2]).is_some()
    {
        namespace = Some(rest[1].to_owned());
        rest = &rest[2..];
    }
    let (plural, name, sub) = match rest {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(*n), None),
        [p, n, s] => (*p, Some(*n), Some(*s)),
        _ => return Err(ApiError::no_route(head.path)),
    };
    let kind =
        resources::find(group, version, plural).ok_or_else(|| ApiError::no_route(head.path))?;
    let subresource = match sub {
        None => None,
        // Namespace finalization is a status-like write in this server.
        Some("finalize") if kind.kind == "Namespace" => Some(Subresource::Status),
        Some(s) => Some(Subresource::parse(s).ok_or_else(|| ApiError::no_route(head.path))?),
    };
    if kind.namespaced && namespace.is_none() && (name.is_some() || *head.method != Method::GET) {
        return Err(ApiError::no_route(head.path));
    }
    if !kind.namespaced && namespace.is_some() {
        return Err(ApiError::no_route(head.path));
    }
    let format = format_of(head.accept, &q);
    let program = head.user_agent.split('/').next().unwrap_or("").trim();
    Ok(Parsed::Resource(ResourceRoute {
        target: Target { kind, namespace, name: name.map(str::to_owned), subresource },
        default_manager: if program.is_empty() { "unknown".to_owned() } else { program.to_owned() },
        method: head.method.clone(),
        query: q,
        format,
        watch,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(method: Method, path: &str, query: &str) -> Result<Parsed, ApiError> {
        parse(&RequestHead {
            method: &method,
            path,
            query,
            accept: "application/json",
            content_type: "",
            user_agent: "kubectl/v1.32.4",
        })
    }

    #[test]
    fn paths_parse_into_targets() {
        let Ok(Parsed::Resource(r)) =
            route(Method::GET, "/apis/apps/v1/namespaces/ns1/deployments/web/scale", "")
        else {
            panic!("not a resource route")
        };
        assert_eq!(
            (r.target.kind.kind, r.target.namespace.as_deref(), r.target.name.as_deref()),
            ("Deployment", Some("ns1"), Some("web"))
        );
        assert_eq!(r.target.subresource, Some(Subresource::Scale));
        let Ok(Parsed::Resource(r)) = route(Method::GET, "/api/v1/namespaces/kube-system", "")
        else {
            panic!()
        };
        assert_eq!(
            (r.target.kind.kind, r.target.name.as_deref()),
            ("Namespace", Some("kube-system"))
        );
        let Ok(Parsed::Resource(r)) =
            route(Method::GET, "/api/v1/watch/namespaces/a/pods", "labelSelector=app%3Dweb")
        else {
            panic!()
        };
        assert!(r.watch);
        assert!(
            matches!(r.finish(None, "").unwrap().op, Operation::Watch(o) if !o.label_selector.is_empty())
        );
        assert!(route(Method::GET, "/apis/apps/v1/widgets", "").is_err());
        assert!(route(Method::GET, "/api/v1/nodes/n1/bogus", "").is_err());
        let Ok(Parsed::Resource(r)) =
            route(Method::GET, "/api/v1/pods", "labelSelector=a%20in%20(")
        else {
            panic!()
        };
        assert_eq!(r.finish(None, "").unwrap_err().code, 400);
    }

    #[test]
    fn queries_decode() {
        let q = parse_query("labelSelector=app%3Dweb%2Ctier+in+(a)&limit=5");
        assert_eq!(q["labelSelector"], "app=web,tier in (a)");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
