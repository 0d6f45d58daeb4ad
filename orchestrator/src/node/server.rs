//! The node agent's HTTP endpoints, reached by the API server (only, see [`super::door`]) for
//! `kubectl logs`, `exec`, `attach` and `port-forward`: container logs from the CRI log files,
//! streams relayed to the runtime's streaming server.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use k8s_cri::v1 as cri;

use super::Shared;
use super::pod_worker::{LABEL_CONTAINER, LABEL_POD_NAME, LABEL_POD_NAMESPACE};
use crate::cri::logs::{LogQuery, read_text};
use crate::upgrade_proxy::{self, Body};

pub(super) fn text(code: StatusCode, msg: impl Into<String>) -> Response<Body> {
    let body = Full::new(Bytes::from(msg.into())).map_err(|never| match never {}).boxed_unsync();
    let mut r = Response::new(body);
    *r.status_mut() = code;
    r
}

fn query_values(query: &str, key: &str) -> Vec<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| percent_decode(v))
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = (b[i] == b'%' && i + 2 < b.len())
            .then(|| {
                std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .flatten();
        match (hex, b[i]) {
            (Some(v), _) => {
                out.push(v);
                i += 3;
                continue;
            }
            (None, b'+') => out.push(b' '),
            (None, c) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn flag(query: &str, key: &str) -> bool {
    query_values(query, key).first().is_some_and(|v| v == "true" || v == "1")
}

/// The log file of a container: the newest run, or the one before with `previous`.
fn log_file(
    shared: &Shared,
    ns: &str,
    pod: &str,
    container: &str,
    previous: bool,
) -> Option<PathBuf> {
    let uid = shared
        .pods
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|(_, (n, p))| n == ns && p == pod)
        .map(|(u, _)| u.clone())?;
    let dir = shared.log_dir.join(format!("{ns}_{pod}_{uid}")).join(container);
    let mut runs: Vec<u32> = std::fs::read_dir(&dir)
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".log")?.parse().ok())
        .collect();
    runs.sort_unstable();
    let pick = if previous { runs.len().checked_sub(2)? } else { runs.len().checked_sub(1)? };
    Some(dir.join(format!("{}.log", runs[pick])))
}

async fn logs(
    shared: Arc<Shared>,
    ns: &str,
    pod: &str,
    container: &str,
    query: &str,
) -> Response<Body> {
    let previous = flag(query, "previous");
    let Some(path) = log_file(&shared, ns, pod, container, previous) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("no logs for container {container:?} of pod {ns}/{pod}"),
        );
    };
    let wanted = match LogQuery::from_params(|k| query_values(query, k).into_iter().next()) {
        Ok(q) => q,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    let initial = match read_text(&path, &wanted) {
        Ok(b) => b,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let mut budget = wanted.limit_bytes.map_or(u64::MAX, |l| l - initial.len() as u64);
    if !flag(query, "follow") || budget == 0 {
        return Response::new(
            Full::new(Bytes::from(initial)).map_err(|never| match never {}).boxed_unsync(),
        );
    }
    // Follow: keep sending what gets appended, until the client goes away or the byte limit
    // is reached.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(16);
    tokio::spawn(async move {
        let whole = LogQuery { timestamps: wanted.timestamps, ..LogQuery::default() };
        let mut sent = read_text(&path, &whole).map(|b| b.len()).unwrap_or(0);
        if tx.send(Ok(Frame::data(Bytes::from(initial)))).await.is_err() {
            return;
        }
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let all = read_text(&path, &whole).unwrap_or_default();
            if all.len() > sent {
                let new = &all[sent..];
                let new = &new[..new.len().min(usize::try_from(budget).unwrap_or(usize::MAX))];
                sent = all.len();
                budget -= new.len() as u64;
                if tx.send(Ok(Frame::data(Bytes::copy_from_slice(new)))).await.is_err()
                    || budget == 0
                {
                    return;
                }
            } else if tx.is_closed() {
                return;
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    Response::new(StreamBody::new(stream).boxed_unsync())
}

/// The runtime id of a pod's running container, or the answer saying why there is none.
async fn running_container(
    shared: &Shared,
    ns: &str,
    pod: &str,
    container: &str,
) -> Result<String, Response<Body>> {
    let mut cri = shared.cri.clone();
    let filter = cri::ContainerFilter {
        state: Some(cri::ContainerStateValue {
            state: cri::ContainerState::ContainerRunning as i32,
        }),
        label_selector: [
            (LABEL_POD_NAMESPACE.to_string(), ns.to_string()),
            (LABEL_POD_NAME.to_string(), pod.to_string()),
            (LABEL_CONTAINER.to_string(), container.to_string()),
        ]
        .into(),
        ..Default::default()
    };
    let found =
        cri.runtime.list_containers(cri::ListContainersRequest { filter: Some(filter) }).await;
    found.ok().and_then(|r| r.into_inner().containers.into_iter().next()).map(|c| c.id).ok_or_else(
        || {
            text(
                StatusCode::NOT_FOUND,
                format!("container {container:?} of pod {ns}/{pod} is not running"),
            )
        },
    )
}

/// Attaches to a container's main process through the runtime's streaming server.
async fn attach(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    ns: &str,
    pod: &str,
    container: &str,
) -> Response<Body> {
    let query = req.uri().query().unwrap_or("").to_string();
    let id = match running_container(&shared, ns, pod, container).await {
        Ok(id) => id,
        Err(resp) => return resp,
    };
    let ar = cri::AttachRequest {
        container_id: id,
        stdin: flag(&query, "stdin"),
        tty: flag(&query, "tty"),
        stdout: flag(&query, "stdout"),
        stderr: flag(&query, "stderr"),
    };
    let url = match shared.cri.clone().runtime.attach(ar).await {
        Ok(r) => r.into_inner().url,
        Err(e) => return text(StatusCode::BAD_REQUEST, e.message().to_string()),
    };
    relay_to_streaming(req, &url).await
}

/// Hands a port-forward session to the runtime's streaming server for the pod's sandbox.
async fn port_forward(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    ns: &str,
    pod: &str,
) -> Response<Body> {
    let mut cri = shared.cri.clone();
    let filter = cri::PodSandboxFilter {
        state: Some(cri::PodSandboxStateValue { state: cri::PodSandboxState::SandboxReady as i32 }),
        label_selector: [
            (LABEL_POD_NAMESPACE.to_string(), ns.to_string()),
            (LABEL_POD_NAME.to_string(), pod.to_string()),
        ]
        .into(),
        ..Default::default()
    };
    let found =
        cri.runtime.list_pod_sandbox(cri::ListPodSandboxRequest { filter: Some(filter) }).await;
    let Some(sb) = found.ok().and_then(|r| r.into_inner().items.into_iter().next()) else {
        return text(StatusCode::NOT_FOUND, format!("pod {ns}/{pod} has no ready sandbox here"));
    };
    let pf = cri::PortForwardRequest { pod_sandbox_id: sb.id, port: Vec::new() };
    let url = match cri.runtime.port_forward(pf).await {
        Ok(r) => r.into_inner().url,
        Err(e) => return text(StatusCode::BAD_REQUEST, e.message().to_string()),
    };
    relay_to_streaming(req, &url).await
}

/// Relays the (upgrade) request to a streaming URL the runtime handed out.
async fn relay_to_streaming(req: Request<Incoming>, url: &str) -> Response<Body> {
    let Some(rest) = url.strip_prefix("http://") else {
        return text(StatusCode::INTERNAL_SERVER_ERROR, format!("unexpected streaming URL {url}"));
    };
    let (addr, path) = rest
        .split_once('/')
        .map(|(a, p)| (a.to_string(), format!("/{p}")))
        .unwrap_or((rest.to_string(), "/".into()));
    match upgrade_proxy::forward(req, &addr, &path).await {
        Ok(r) => r,
        Err(e) => text(StatusCode::BAD_GATEWAY, e.to_string()),
    }
}

async fn exec(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    ns: &str,
    pod: &str,
    container: &str,
) -> Response<Body> {
    let query = req.uri().query().unwrap_or("").to_string();
    let cmd = query_values(&query, "command");
    let id = match running_container(&shared, ns, pod, container).await {
        Ok(id) => id,
        Err(resp) => return resp,
    };
    let mut cri = shared.cri.clone();
    let er = cri::ExecRequest {
        container_id: id,
        cmd,
        tty: flag(&query, "tty"),
        stdin: flag(&query, "stdin"),
        stdout: flag(&query, "stdout"),
        stderr: flag(&query, "stderr"),
    };
    let url = match cri.runtime.exec(er).await {
        Ok(r) => r.into_inner().url,
        Err(e) => return text(StatusCode::BAD_REQUEST, e.message().to_string()),
    };
    relay_to_streaming(req, &url).await
}

/// Answers one request of the API server.
pub(super) async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["healthz"] => text(StatusCode::OK, "ok"),
        ["containerLogs", ns, pod, container] => {
            let q = req.uri().query().unwrap_or("").to_string();
            logs(shared, ns, pod, container, &q).await
        }
        ["exec", ns, pod, container] => {
            let (ns, pod, container) = (ns.to_string(), pod.to_string(), container.to_string());
            exec(shared, req, &ns, &pod, &container).await
        }
        ["attach", ns, pod, container] => {
            let (ns, pod, container) = (ns.to_string(), pod.to_string(), container.to_string());
            attach(shared, req, &ns, &pod, &container).await
        }
        ["portForward", ns, pod] => {
            let (ns, pod) = (ns.to_string(), pod.to_string());
            port_forward(shared, req, &ns, &pod).await
        }
        _ => text(StatusCode::NOT_FOUND, format!("no such endpoint {path}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsing() {
        let q = "command=sh&command=-c&command=echo%20hi%2Bthere&stdout=true&tailLines=5";
        assert_eq!(query_values(q, "command"), vec!["sh", "-c", "echo hi+there"]);
        assert!(flag(q, "stdout"));
        assert!(!flag(q, "stdin"));
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
