//! Cluster DNS for the pods of this node, served over UDP and TCP on the pod bridge's gateway
//! address, which every pod's resolv.conf names.
//!
//! - [`zone`]: the cluster zone from Services and EndpointSlices (pure).
//! - [`answer`]: answers from the zone (pure): records, NXDOMAIN/NODATA, truncation.
//! - [`forward`]: names outside the zone, relayed to the node's resolvers.

pub mod answer;
pub mod forward;
pub mod zone;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::kube::{Informers, Kube};
use answer::Reply;
use forward::Upstreams;
pub use zone::{Zone, service_name};

pub const DOMAIN: &str = "cluster.local";

/// The zone as served now, replaced whenever Services or EndpointSlices change.
#[derive(Default)]
pub struct Records(RwLock<Arc<Zone>>);

impl Records {
    pub fn replace(&self, zone: Zone) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(zone);
    }

    fn zone(&self) -> Arc<Zone> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Follows Services and EndpointSlices and serves the zone on `addr`:53 until the process
/// ends, binding again while the address is not there yet (the bridge may come up after the
/// agent).
pub fn start(kube: Kube, addr: Ipv4Addr, resolv_conf: &std::path::Path) {
    let records = Arc::new(Records::default());
    let informers = Informers::new(kube);
    let services = informers.get::<Service>();
    let slices = informers.get::<EndpointSlice>();
    let changed = Arc::new(tokio::sync::Notify::new());
    let n = changed.clone();
    services.on_change(move |_| n.notify_one());
    let n = changed.clone();
    slices.on_change(move |_| n.notify_one());
    let tasks = informers.start();
    let r = records.clone();
    tokio::spawn(async move {
        let _informers = tasks;
        loop {
            let (svc, sl) = (services.list(), slices.list());
            let zone = Zone::build(
                &svc.iter().map(|s| &**s).collect::<Vec<_>>(),
                &sl.iter().map(|s| &**s).collect::<Vec<_>>(),
            );
            r.replace(zone);
            changed.notified().await;
        }
    });
    let upstreams = Arc::new(Upstreams::from_file(resolv_conf, addr.into()));
    if upstreams.is_empty() {
        let file = resolv_conf.display();
        tracing::warn!(%file, "no resolver named there: pods resolve cluster names only");
    }
    tokio::spawn(serve_udp(records.clone(), upstreams.clone(), addr));
    tokio::spawn(serve_tcp(records, upstreams, addr));
}

async fn bind<T, F: std::future::Future<Output = std::io::Result<T>>>(
    what: &str,
    addr: Ipv4Addr,
    bind: impl Fn(SocketAddr) -> F,
) -> T {
    loop {
        match bind(SocketAddr::from((addr, 53))).await {
            Ok(s) => return s,
            Err(e) => {
                tracing::warn!("cluster DNS on {addr}:53 ({what}): {e}; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

/// Queries outside the cluster in flight at once; past that they are answered SERVFAIL, so
/// that a pod flooding the resolver cannot take the node agent's descriptors and memory.
const FORWARDS_IN_FLIGHT: usize = 256;

async fn serve_udp(records: Arc<Records>, upstreams: Arc<Upstreams>, addr: Ipv4Addr) {
    let socket = Arc::new(bind("UDP", addr, tokio::net::UdpSocket::bind).await);
    let in_flight = Arc::new(tokio::sync::Semaphore::new(FORWARDS_IN_FLIGHT));
    let mut buf = vec![0u8; 65535];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf).await else { continue };
        let query = &buf[..n];
        match answer::respond(&records.zone(), query, !upstreams.is_empty(), Some(512)) {
            Some(Reply::Answer(bytes)) => {
                let _ = socket.send_to(&bytes, peer).await;
            }
            Some(Reply::Forward) => {
                let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                    let _ = socket.send_to(&forward::servfail(query), peer).await;
                    continue;
                };
                let (socket, upstreams, query) =
                    (socket.clone(), upstreams.clone(), query.to_vec());
                tokio::spawn(async move {
                    let answer = upstreams.ask(&query, false).await;
                    let _ = socket.send_to(&answer, peer).await;
                    drop(permit);
                });
            }
            None => {}
        }
    }
}

/// How long a TCP client may stay idle between queries.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// TCP clients served at once; more are closed at once (they retry, or fall back to UDP).
const TCP_CLIENTS: usize = 64;

async fn serve_tcp(records: Arc<Records>, upstreams: Arc<Upstreams>, addr: Ipv4Addr) {
    let listener = bind("TCP", addr, tokio::net::TcpListener::bind).await;
    let clients = Arc::new(tokio::sync::Semaphore::new(TCP_CLIENTS));
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let Ok(permit) = clients.clone().try_acquire_owned() else { continue };
        let (records, upstreams) = (records.clone(), upstreams.clone());
        tokio::spawn(async move {
            let _ = tcp_client(stream, &records, &upstreams).await;
            drop(permit);
        });
    }
}

/// Length-prefixed queries, one answer each, until the client is done or idle.
async fn tcp_client(
    mut stream: tokio::net::TcpStream,
    records: &Records,
    upstreams: &Upstreams,
) -> std::io::Result<()> {
    loop {
        let n = match tokio::time::timeout(TCP_IDLE, stream.read_u16()).await {
            Ok(n) => n?,
            Err(_) => return Ok(()),
        };
        let mut query = vec![0u8; usize::from(n)];
        tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut query))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        let answer = match answer::respond(&records.zone(), &query, !upstreams.is_empty(), None) {
            Some(Reply::Answer(bytes)) => bytes,
            Some(Reply::Forward) => upstreams.ask(&query, true).await,
            None => return Ok(()),
        };
        let len = u16::try_from(answer.len()).map_err(std::io::Error::other)?;
        stream.write_all(&len.to_be_bytes()).await?;
        stream.write_all(&answer).await?;
    }
}

/// The resolver configuration of a pod in `namespace` whose DNS server is `server`.
pub fn resolv_conf(namespace: &str, server: Ipv4Addr) -> (Vec<String>, Vec<String>, Vec<String>) {
    (
        vec![server.to_string()],
        vec![format!("{namespace}.svc.{DOMAIN}"), format!("svc.{DOMAIN}"), DOMAIN.to_string()],
        vec!["ndots:5".to_string()],
    )
}
