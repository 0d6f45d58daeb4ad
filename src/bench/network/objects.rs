//! The Kubernetes objects of a run: the two server pods (one per node), the client pod on
//! node A, a Service in front of each server pod, and the many-endpoint Service whose
//! Endpoints and EndpointSlice are written by hand.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use orchestrator::kube::Kube;
use serde_json::json;

/// The port the Sentry servers listen on, and the same port of each Service.
pub const SENTRY_PORT: u16 = 80;
/// The port the native servers listen on in the same pods' namespaces.
pub const NATIVE_PORT: u16 = 81;
/// The port of the many-endpoint Service's listener.
pub const ENDPOINT_PORT: u16 = 7000;

pub const CLIENT: &str = "netbench-client";

fn decode<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> anyhow::Result<T> {
    serde_json::from_value(v).context("building an object")
}

fn pod(name: &str, node: &str, command: &[&str], extra: serde_json::Value) -> serde_json::Value {
    let mut p = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
        "spec": {
            "nodeName": node,
            "runtimeClassName": "sentry",
            "terminationGracePeriodSeconds": 0,
            "containers": [{
                "name": "main", "image": "bench:1", "imagePullPolicy": "Never",
                "command": command,
            }],
        },
    });
    if let (Some(spec), Some(extra)) = (p["spec"].as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    p
}

/// A server pod `name` on `node`: netbench serving on [`SENTRY_PORT`].
pub async fn server_pod(kube: &Kube, name: &str, node: &str) -> anyhow::Result<()> {
    let port = SENTRY_PORT.to_string();
    let p: Pod = decode(pod(name, node, &["/netbench", "server", &port], json!({})))?;
    kube.create(&p).await.with_context(|| format!("creating pod {name}"))?;
    Ok(())
}

/// The client pod on `node`: waits for `host_dir/plan`, runs it, writes `host_dir/result`.
pub async fn client_pod(kube: &Kube, node: &str, host_dir: &Path) -> anyhow::Result<()> {
    let extra = json!({
        "restartPolicy": "Never",
        "volumes": [{"name": "out", "hostPath": {"path": host_dir, "type": "Directory"}}],
    });
    let mut v = pod(CLIENT, node, &["/netbench", "run", "/out/plan", "/out/result"], extra);
    v["spec"]["containers"][0]["volumeMounts"] = json!([{"name": "out", "mountPath": "/out"}]);
    kube.create(&decode::<Pod>(v)?).await.context("creating the client pod")?;
    Ok(())
}

/// Waits (up to 2 minutes) for pod `name` to run; its IP.
pub async fn wait_running(kube: &Kube, name: &str) -> anyhow::Result<Ipv4Addr> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status = kube.get::<Pod>(Some("default"), name).await?.and_then(|p| p.status);
        let phase = status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
        let ip = status.and_then(|s| s.pod_ip).and_then(|ip| ip.parse().ok());
        match (phase.as_str(), ip) {
            ("Running", Some(ip)) => return Ok(ip),
            ("Failed" | "Succeeded", _) => bail!("pod {name} ended ({phase}) before it was used"),
            _ if Instant::now() > deadline => bail!("pod {name} not running within 2 minutes"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The phase of pod `name`.
pub async fn phase(kube: &Kube, name: &str) -> anyhow::Result<String> {
    let p = kube.get::<Pod>(Some("default"), name).await?;
    Ok(p.and_then(|p| p.status).and_then(|s| s.phase).unwrap_or_default())
}

fn cluster_ip(svc: &Service) -> anyhow::Result<Ipv4Addr> {
    let ip = svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()).unwrap_or_default();
    ip.parse().with_context(|| format!("the Service's cluster IP {ip:?}"))
}

/// A Service selecting pod `app`, with a port for its Sentry server and one for the native
/// server beside it; its cluster IP.
pub async fn service(kube: &Kube, name: &str, app: &str) -> anyhow::Result<Ipv4Addr> {
    let port = |n: &str, p: u16| json!({"name": n, "port": p, "targetPort": p, "protocol": "TCP"});
    let svc: Service = decode(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"app": app},
                 "ports": [port("sentry", SENTRY_PORT), port("native", NATIVE_PORT)]},
    }))?;
    cluster_ip(&kube.create(&svc).await.with_context(|| format!("creating Service {name}"))?)
}

/// A Service without a selector whose endpoints are `addresses` at [`ENDPOINT_PORT`], written
/// as both the Endpoints object (what the user-space proxy reads) and an EndpointSlice (what
/// the nftables data path reads); its cluster IP.
pub async fn many_endpoint_service(
    kube: &Kube,
    name: &str,
    addresses: &[Ipv4Addr],
) -> anyhow::Result<Ipv4Addr> {
    let svc: Service = decode(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"ports": [{"name": "c", "port": SENTRY_PORT, "targetPort": ENDPOINT_PORT,
                            "protocol": "TCP"}]},
    }))?;
    let ip = cluster_ip(&kube.create(&svc).await.context("creating the many-endpoint Service")?)?;
    let ips: Vec<serde_json::Value> = addresses.iter().map(|a| json!({"ip": a})).collect();
    let ep: Endpoints = decode(json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": name, "namespace": "default"},
        "subsets": [{"addresses": ips,
                     "ports": [{"name": "c", "port": ENDPOINT_PORT, "protocol": "TCP"}]}],
    }))?;
    kube.create(&ep).await.context("creating the Endpoints")?;
    let endpoints: Vec<serde_json::Value> = addresses
        .iter()
        .map(|a| json!({"addresses": [a], "conditions": {"ready": true}}))
        .collect();
    let slice: EndpointSlice = decode(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{name}-1"), "namespace": "default",
                     "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "c", "port": ENDPOINT_PORT, "protocol": "TCP"}],
    }))?;
    kube.create(&slice).await.context("creating the EndpointSlice")?;
    Ok(ip)
}
