//! `pods/log`, `pods/exec`, `pods/attach` and `pods/portforward`: authorized here, then relayed to the node
//! agent running the pod over TLS (exec and port-forward streams as upgraded connections).

use http::Request;
use hyper::body::Incoming;
use serde_json::Value;

use crate::api::engine::authorize::Attributes;
use crate::api::engine::{decode, key};
use crate::api::{Api, ApiError, User, resources};
use crate::upgrade_proxy::Body;

use super::kubelet_client::KubeletClient;

/// A request for a pod's node: which pod, which subresource.
pub struct NodeRequest {
    pub namespace: String,
    pub pod: String,
    pub sub: &'static str,
}

/// Recognizes /api/v1/namespaces/{ns}/pods/{name}/(log|exec|attach|portforward).
pub fn parse(path: &str) -> Option<NodeRequest> {
    let rest = path.strip_prefix("/api/v1/namespaces/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [ns, "pods", name, sub] if !ns.is_empty() && !name.is_empty() => {
            let sub = match *sub {
                "log" => "log",
                "exec" => "exec",
                "portforward" => "portforward",
                "attach" => "attach",
                _ => return None,
            };
            Some(NodeRequest { namespace: ns.to_string(), pod: name.to_string(), sub })
        }
        _ => None,
    }
}

fn query_value<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v)
}

/// Authorizes and forwards `req`.
pub async fn forward(
    api: &Api,
    kubelet: &KubeletClient,
    user: &User,
    req: Request<Incoming>,
    nr: NodeRequest,
) -> Result<http::Response<Body>, ApiError> {
    let verb = if nr.sub == "log" { "get" } else { "create" };
    let attrs = Attributes {
        verb: verb.into(),
        resource: "pods".into(),
        subresource: nr.sub.into(),
        namespace: nr.namespace.clone(),
        name: nr.pod.clone(),
        ..Default::default()
    };
    if !api.allowed(user, &attrs).await? {
        return Err(ApiError::forbidden(format!(
            "pods \"{}\" is forbidden: User \"{}\" cannot {verb} resource \"pods/{}\" in API group \"\" in the namespace \"{}\"",
            nr.pod, user.name, nr.sub, nr.namespace
        )));
    }
    let pods =
        resources::find("", "v1", "pods").ok_or_else(|| ApiError::internal("no pods resource"))?;
    let nodes = resources::find("", "v1", "nodes")
        .ok_or_else(|| ApiError::internal("no nodes resource"))?;
    let store = api.store();
    let pod = match store
        .get(&key(pods, Some(&nr.namespace), &nr.pod))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
    {
        Some(kv) => decode(&kv)?,
        None => return Err(ApiError::not_found(pods, &nr.pod)),
    };
    let node_name =
        pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()).ok_or_else(|| {
            ApiError::bad_request(format!("pod {} does not have a host assigned", nr.pod))
        })?;
    let node: Value = match store
        .get(&key(nodes, None, node_name))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
    {
        Some(kv) => decode(&kv)?,
        None => {
            return Err(ApiError::new(
                503,
                "ServiceUnavailable",
                format!("node {node_name:?} is not registered"),
            ));
        }
    };
    let address = node["status"]["addresses"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["type"] == "InternalIP"))
        .and_then(|x| x["address"].as_str())
        .ok_or_else(|| {
            ApiError::new(503, "ServiceUnavailable", format!("node {node_name:?} has no address"))
        })?;
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(10250);
    let query = req.uri().query().unwrap_or("").to_string();
    let addr = if address.contains(':') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    };
    let relay = |req, path: String| async move {
        let bad_gateway =
            |e: String| ApiError::new(502, "BadGateway", format!("node {node_name}: {e}"));
        let tls = kubelet.connect(address, port).await.map_err(bad_gateway)?;
        crate::upgrade_proxy::forward_over(req, tls, &addr, &path)
            .await
            .map_err(|e| bad_gateway(e.to_string()))
    };
    if nr.sub == "portforward" {
        return relay(req, format!("/portForward/{}/{}?{query}", nr.namespace, nr.pod)).await;
    }
    if nr.sub == "log" {
        // Checked here, as the API does, so that a bad value is a Status naming it.
        crate::cri::logs::LogQuery::from_params(|k| {
            query_value(&query, k).map(super::router::percent_decode)
        })
        .map_err(ApiError::bad_request)?;
    }
    let container = match query_value(&query, "container") {
        Some(c) => c.to_string(),
        None => {
            let cs = pod["spec"]["containers"].as_array().cloned().unwrap_or_default();
            match cs.as_slice() {
                [one] => one["name"].as_str().unwrap_or("").to_string(),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "a container name must be specified for pod {}, choose one of: [{}]",
                        nr.pod,
                        cs.iter().filter_map(|c| c["name"].as_str()).collect::<Vec<_>>().join(" ")
                    )));
                }
            }
        }
    };
    let endpoint = match nr.sub {
        "log" => "containerLogs",
        "attach" => "attach",
        _ => "exec",
    };
    relay(req, format!("/{endpoint}/{}/{}/{container}?{query}", nr.namespace, nr.pod)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognizes_node_subresources() {
        let r = parse("/api/v1/namespaces/default/pods/web-1/exec").unwrap();
        assert_eq!((r.namespace.as_str(), r.pod.as_str(), r.sub), ("default", "web-1", "exec"));
        assert!(parse("/api/v1/namespaces/default/pods/web-1/status").is_none());
        assert!(parse("/api/v1/namespaces//pods/x/log").is_none());
        assert_eq!(query_value("container=a&follow=true", "follow"), Some("true"));
    }
}
