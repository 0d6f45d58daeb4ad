//! The HTTP face of the engine: authenticate, route, decode bodies, execute, encode answers
//! (JSON objects, Status errors, chunked watch streams).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::{Frame, Incoming};
use serde_json::Value;

use super::authn::TokenFile;
use super::metrics::Metrics;
use super::router::{self, Health, Parsed, RequestHead, Route};
use crate::api::engine::authorize::Attributes;
use crate::api::engine::token_review::API_AUDIENCE;
use crate::api::{Api, ApiError, ApiResponse, User, discovery, openapi, openapi_v2};

/// Largest request body accepted (Kubernetes' limit is about 3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

pub struct State {
    pub api: Arc<Api>,
    pub tokens: Arc<TokenFile>,
    pub metrics: Metrics,
    pub server_address: String,
    /// How pods' logs and streams reach their nodes.
    pub kubelet: super::kubelet_client::KubeletClient,
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|e: Infallible| match e {}).boxed_unsync()
}

fn json_response(code: u16, body: &Value, content_type: &str) -> Response<Body> {
    let mut resp = Response::new(full(serde_json::to_vec(body).unwrap_or_default()));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(ct) = HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(CONTENT_TYPE, ct);
    }
    resp
}

fn error_response(e: &ApiError) -> Response<Body> {
    json_response(e.code, &e.status(), "application/json")
}

fn text_response(body: String) -> Response<Body> {
    let mut resp = Response::new(full(body));
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

fn header(req: &Request<Incoming>, name: http::header::HeaderName) -> &str {
    req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// Serves one request; `cert_user` is the identity of a verified client certificate.
pub async fn handle(
    state: Arc<State>,
    cert_user: Option<User>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let start = Instant::now();
    let mut label = ("", String::new());
    let resp = match dispatch(&state, cert_user, req, &mut label).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    state.metrics.observe(label.0, &label.1, resp.status().as_u16(), start.elapsed());
    Ok(resp)
}

/// How much of an oversized body is read and dropped, and for how long, before the 413: a
/// client still sending when the server answers and closes gets a reset instead of the answer.
const DRAIN_BYTES: usize = 4 * MAX_BODY;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

async fn read_body(req: Request<Incoming>) -> Result<Bytes, ApiError> {
    let mut body = req.into_body();
    let mut kept = bytes::BytesMut::new();
    let mut seen = 0usize;
    let mut drain_until = None;
    loop {
        let next = match drain_until {
            None => body.frame().await,
            Some(deadline) => match tokio::time::timeout_at(deadline, body.frame()).await {
                Ok(next) => next,
                Err(_) => break,
            },
        };
        let Some(frame) = next else { break };
        let frame =
            frame.map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
        let Ok(data) = frame.into_data() else { continue };
        seen = seen.saturating_add(data.len());
        if seen <= MAX_BODY {
            kept.extend_from_slice(&data);
        } else if seen > DRAIN_BYTES {
            break;
        } else if drain_until.is_none() {
            drain_until = Some(tokio::time::Instant::now() + DRAIN_TIME);
        }
    }
    if seen > MAX_BODY {
        return Err(ApiError::too_large(MAX_BODY));
    }
    Ok(kept.freeze())
}

fn decode_body(bytes: &[u8], content_type: &str) -> Result<Option<Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let ct = content_type.split(';').next().unwrap_or("").trim();
    let value: Value = match ct {
        "application/yaml" | "application/apply-patch+yaml" | "application/x-yaml" => {
            serde_yaml::from_slice(bytes)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
        }
        ""
        | "application/json"
        | "*/*"
        | "application/json-patch+json"
        | "application/merge-patch+json"
        | "application/strategic-merge-patch+json" => {
            serde_json::from_slice(bytes).map_err(|e| {
                ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
            })?
        }
        super::protobuf::CONTENT_TYPE => super::protobuf::decode(bytes)?,
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    Ok(Some(value))
}

/// The token of an `Authorization: Bearer` header; the scheme is case-insensitive (the
/// Python client's in-cluster configuration sends `bearer`).
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

async fn dispatch(
    state: &State,
    cert_user: Option<User>,
    req: Request<Incoming>,
    label: &mut (&'static str, String),
) -> Result<Response<Body>, ApiError> {
    let bearer = bearer_token(header(&req, AUTHORIZATION));
    let user = match (cert_user, bearer) {
        (Some(u), _) => u,
        (None, Some(t)) => match state.tokens.lookup(t) {
            Some(u) => u,
            None => match state.api.authenticate_service_account(t, &[API_AUDIENCE]).await {
                Ok((u, _)) => u,
                Err(why) => {
                    tracing::debug!("bearer token refused: {why}");
                    return Err(ApiError::unauthorized());
                }
            },
        },
        (None, None) => return Err(ApiError::unauthorized()),
    };
    let user = super::impersonation::resolve(&state.api, user, req.headers()).await?;
    if let Some(nr) = super::node_proxy::parse(req.uri().path()) {
        label.0 = "proxy";
        label.1 = format!("pods/{}", nr.sub);
        return super::node_proxy::forward(&state.api, &state.kubelet, &user, req, nr).await;
    }
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let accept = header(&req, ACCEPT).to_owned();
    let content_type = header(&req, CONTENT_TYPE).to_owned();
    let user_agent = header(&req, http::header::USER_AGENT).to_owned();
    let head = RequestHead {
        method: &method,
        path: &path,
        query: &query,
        accept: &accept,
        content_type: &content_type,
        user_agent: &user_agent,
    };
    // Read the body first so an early error still leaves the connection usable.
    let bytes = read_body(req).await?;
    let parsed = router::parse(&head)?;
    let route = match parsed {
        Parsed::Route(r) => r,
        Parsed::Resource(rr) => {
            let body = decode_body(&bytes, &content_type)?;
            let request = rr.finish(body, &content_type)?;
            label.0 = request.op.verb();
            label.1 = request.target.kind.plural.to_owned();
            return respond(state.api.execute(&user, request).await?);
        }
    };
    label.0 = "get";
    if method != http::Method::GET {
        return Err(ApiError::method_not_allowed(format!("{method} is not supported on {path}")));
    }
    let attrs = Attributes { verb: "get".into(), path: Some(path.clone()), ..Default::default() };
    if !state.api.allowed(&user, &attrs).await? {
        return Err(ApiError::forbidden(format!(
            "forbidden: User \"{}\" cannot get path \"{path}\"",
            user.name
        )));
    }
    let aggregated =
        accept.split(',').any(|a| a.contains("as=APIGroupDiscoveryList") && a.contains("v=v2"));
    let json = |v: Value| Ok(json_response(200, &v, "application/json"));
    match route {
        Route::Version => json(discovery::version()),
        Route::Health(h) => {
            let body = match h {
                Health::Healthz | Health::Livez => "ok".to_owned(),
                Health::Readyz => match state.api.store().current_revision().await {
                    Ok(_) => "ok".to_owned(),
                    Err(e) => {
                        return Err(ApiError::new(
                            503,
                            "ServiceUnavailable",
                            format!("store: {e}"),
                        ));
                    }
                },
            };
            Ok(text_response(body))
        }
        Route::Metrics => {
            Ok(text_response(state.metrics.render() + &state.api.watch_cache().render_metrics()))
        }
        Route::CoreVersions if aggregated => {
            Ok(json_response(200, &discovery::aggregated(true), discovery::AGGREGATED_CONTENT_TYPE))
        }
        Route::CoreVersions => json(discovery::api_versions(&state.server_address)),
        Route::Groups if aggregated => Ok(json_response(
            200,
            &discovery::aggregated(false),
            discovery::AGGREGATED_CONTENT_TYPE,
        )),
        Route::Groups => json(discovery::api_group_list()),
        Route::Group(g) => {
            let list = discovery::api_group_list();
            let group = list["groups"]
                .as_array()
                .and_then(|gs| gs.iter().find(|x| x["name"] == g.as_str()).cloned());
            match group {
                Some(mut g) => {
                    g["kind"] = "APIGroup".into();
                    g["apiVersion"] = "v1".into();
                    json(g)
                }
                None => Err(ApiError::no_route(&path)),
            }
        }
        Route::Resources { group, version } => discovery::resource_list(&group, &version)
            .map_or_else(|| Err(ApiError::no_route(&path)), json),
        Route::OpenApiV3Root => json(openapi::root()),
        Route::OpenApiV3 { group, version } => {
            openapi::document(&group, &version).map_or_else(|| Err(ApiError::no_route(&path)), json)
        }
        Route::OpenApiV2 => {
            let (body, content_type) = if openapi_v2::wants_protobuf(&accept) {
                (openapi_v2::protobuf(), openapi_v2::PROTOBUF_CONTENT_TYPE)
            } else {
                (openapi_v2::json(), "application/json")
            };
            let mut r = Response::new(full(body));
            r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            Ok(r)
        }
        Route::Resource(_) => Err(ApiError::no_route(&path)),
    }
}

fn respond(resp: ApiResponse) -> Result<Response<Body>, ApiError> {
    match resp {
        ApiResponse::Object { code, body, warnings } => {
            let mut r = json_response(code, &body, "application/json");
            for w in warnings {
                let escaped = w.replace('"', "\\\"");
                if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{escaped}\"")) {
                    r.headers_mut().append(http::header::WARNING, v);
                }
            }
            Ok(r)
        }
        ApiResponse::List(list) => {
            let mut r = Response::new(full(list.to_json()));
            r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            Ok(r)
        }
        ApiResponse::Watch(events) => {
            let frames = events.map(|ev| {
                let mut line = serde_json::to_vec(&ev).unwrap_or_default();
                line.push(b'\n');
                Ok::<_, std::io::Error>(Frame::data(Bytes::from(line)))
            });
            let mut r = Response::new(BodyExt::boxed_unsync(StreamBody::new(frames)));
            r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            Ok(r)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc "), Some("abc"));
        assert_eq!(bearer_token("BEARER  abc"), Some("abc"));
        for bad in ["", "Bearer", "Bearer ", "Basic abc", "Bearerabc"] {
            assert_eq!(bearer_token(bad), None, "{bad:?}");
        }
    }
}
