//! `ringfence bench api`: the API server under load, on each store backend.
//!
//! Per backend: start a server in this process, preload objects, then with N concurrent
//! clients (one HTTPS connection each) measure create, get, update and list throughput and
//! latency (closed loop), the latency of mutations paced at a fixed rate, and how fast one
//! write reaches many watchers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use orchestrator::kube::connection::{Connection, ConnectionConfig};
use orchestrator::server::{self, ServerConfig};
use orchestrator::store::Store;
use orchestrator::store::local_etcd::LocalEtcd;
use serde_json::{Value, json};

use super::stats::Samples;

const NS: &str = "bench";

#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub objects: usize,
    pub clients: usize,
    pub watchers: usize,
    pub duration: Duration,
    pub paced_qps: u32,
    pub backends: Vec<BackendKind>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Embedded,
    Etcd,
}

impl BackendKind {
    fn name(self) -> &'static str {
        match self {
            Self::Embedded => "embedded",
            Self::Etcd => "etcd",
        }
    }
}

/// One measured line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    pub backend: &'static str,
    pub op: String,
    pub rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

fn cm(name: &str, i: usize) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": NS, "labels": {"app": "bench", "shard": (i % 10).to_string()}},
           "data": {"payload": "x".repeat(200), "i": i.to_string()}})
}

fn path(name: Option<&str>) -> String {
    match name {
        Some(n) => format!("/api/v1/namespaces/{NS}/configmaps/{n}"),
        None => format!("/api/v1/namespaces/{NS}/configmaps"),
    }
}

async fn connections(config: &ConnectionConfig, n: usize) -> anyhow::Result<Vec<Connection>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(config.connect().await.context("connecting to the server")?);
    }
    Ok(out)
}

/// What one operation of a phase does: (connection, worker, sequence) -> expected status.
type Op = Arc<dyn Fn(usize, usize) -> (String, String, Option<Value>, u16) + Send + Sync>;

/// Runs `op` on every connection until `duration` passes (closed loop) or, when `qps` is set,
/// starts operations at that total rate (open loop). Returns ops/s and the latencies.
async fn phase(
    conns: Vec<Connection>,
    duration: Duration,
    qps: Option<u32>,
    op: Op,
) -> anyhow::Result<(f64, Samples, Vec<Connection>)> {
    let start = Instant::now();
    let errors = Arc::new(AtomicUsize::new(0));
    let n = conns.len();
    let mut tasks = Vec::new();
    for (w, mut conn) in conns.into_iter().enumerate() {
        let (op, errors) = (op.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut samples = Samples::default();
            let mut seq = 0;
            // Paced: worker w starts its k-th op at (k * n + w) / qps seconds.
            let interval = qps.map(|q| Duration::from_secs_f64(n as f64 / f64::from(q.max(1))));
            let offset = qps.map(|q| Duration::from_secs_f64(w as f64 / f64::from(q.max(1))));
            while start.elapsed() < duration {
                if let (Some(i), Some(o)) = (interval, offset) {
                    let due = start + o + i * seq as u32;
                    if due > start + duration {
                        break;
                    }
                    tokio::time::sleep_until(due.into()).await;
                }
                let (method, p, body, want) = op(w, seq);
                let t = Instant::now();
                let r = match body {
                    Some(b) => conn.send_json(&method, &p, &b).await,
                    None => conn.request(&method, &p, None, Vec::new()).await,
                };
                samples.push(t.elapsed());
                match r {
                    Ok(r) if r.status == want => {}
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                seq += 1;
            }
            (samples, conn)
        }));
    }
    let mut all = Samples::default();
    let mut conns = Vec::new();
    for t in tasks {
        let (s, c) = t.await?;
        all.extend(s);
        conns.push(c);
    }
    let secs = start.elapsed().as_secs_f64();
    let errs = errors.load(Ordering::Relaxed);
    if errs > 0 {
        bail!("{errs} of {} requests failed", all.len());
    }
    Ok((all.len() as f64 / secs, all, conns))
}

fn bar(len: u64, msg: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{msg:24} [{bar:30}] {pos}/{len} {per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_message(msg.to_owned());
    pb
}

async fn preload(
    config: &ConnectionConfig,
    objects: usize,
    clients: usize,
    backend: &str,
) -> anyhow::Result<()> {
    let pb = bar(objects as u64, &format!("{backend}: preload"));
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for mut conn in connections(config, clients.min(64)).await? {
        let (next, pb) = (next.clone(), pb.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= objects {
                    return Ok::<_, anyhow::Error>(());
                }
                let r = conn.send_json("POST", &path(None), &cm(&format!("obj-{i:06}"), i)).await?;
                if r.status != 201 {
                    bail!(
                        "preload create answered {}: {}",
                        r.status,
                        String::from_utf8_lossy(&r.body)
                    );
                }
                pb.inc(1);
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    pb.finish_and_clear();
    Ok(())
}

async fn watch_fanout(
    config: &ConnectionConfig,
    watchers: usize,
    writes: usize,
) -> anyhow::Result<(f64, Samples)> {
    let mut conn = config.connect().await?;
    let rv =
        conn.get(&format!("{}?limit=1", path(None))).await?.json()["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("0")
            .to_owned();
    let mut streams = Vec::new();
    for _ in 0..watchers {
        let c = config.connect().await?;
        streams.push(
            c.watch(&format!(
                "{}?watch=1&resourceVersion={rv}&fieldSelector=metadata.name%3Dfanout",
                path(None)
            ))
            .await?,
        );
    }
    let received = Arc::new(tokio::sync::Mutex::new(Samples::default()));
    let sent_at = Arc::new(std::sync::Mutex::new(Vec::<Instant>::new()));
    let mut tasks = Vec::new();
    for mut rx in streams {
        let (received, sent_at) = (received.clone(), sent_at.clone());
        tasks.push(tokio::spawn(async move {
            let mut local = Samples::default();
            for k in 0..writes {
                let Ok(Some(_)) = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await
                else {
                    break;
                };
                let sent = sent_at.lock().ok().and_then(|s| s.get(k).copied());
                if let Some(s) = sent {
                    local.push(s.elapsed());
                }
            }
            received.lock().await.extend(local);
        }));
    }
    let start = Instant::now();
    for k in 0..writes {
        if let Ok(mut s) = sent_at.lock() {
            s.push(Instant::now());
        }
        let r = if k == 0 {
            conn.send_json("POST", &path(None), &cm("fanout", 0)).await?
        } else {
            conn.send_json("PUT", &path(Some("fanout")), &cm("fanout", k)).await?
        };
        if !matches!(r.status, 200 | 201) {
            bail!("fan-out write answered {}", r.status);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for t in tasks {
        t.await?;
    }
    let secs = start.elapsed().as_secs_f64();
    let samples = std::mem::take(&mut *received.lock().await);
    if samples.len() < watchers * writes {
        bail!("watchers received {} of {} events", samples.len(), watchers * writes);
    }
    Ok((samples.len() as f64 / secs, samples))
}

async fn run_backend(kind: BackendKind, cfg: &BenchConfig) -> anyhow::Result<Vec<Row>> {
    let dir = tempfile::tempdir()?;
    let mut _etcd = None;
    let store: Arc<dyn Store> = match kind {
        BackendKind::Embedded => server::open_embedded(dir.path())?,
        BackendKind::Etcd => {
            let e = LocalEtcd::start(&dir.path().join("etcd")).await?;
            let s = server::open_etcd(&e.endpoint).await?;
            _etcd = Some(e);
            s
        }
    };
    let mut sc = ServerConfig::new(dir.path());
    sc.listen = "127.0.0.1:0".parse()?;
    let running = server::start(sc, store).await?;
    let config = ConnectionConfig::from_kubeconfig(&running.kubeconfig)?;
    let mut conn = config.connect().await?;
    let r = conn
        .send_json(
            "POST",
            "/api/v1/namespaces",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
        )
        .await?;
    if r.status != 201 {
        bail!("creating the bench namespace answered {}", r.status);
    }
    let backend = kind.name();
    preload(&config, cfg.objects, cfg.clients, backend).await?;

    let mut rows = Vec::new();
    let mut conns = connections(&config, cfg.clients).await?;
    let objects = cfg.objects;
    let ops: Vec<(&str, Option<u32>, Op)> = vec![
        (
            "create",
            None,
            Arc::new(|w, s| ("POST".into(), path(None), Some(cm(&format!("new-{w}-{s}"), s)), 201)),
        ),
        (
            "get",
            None,
            Arc::new(move |w, s| {
                (
                    "GET".into(),
                    path(Some(&format!("obj-{:06}", (w * 7919 + s * 104729) % objects))),
                    None,
                    200,
                )
            }),
        ),
        (
            "update",
            None,
            Arc::new(move |w, s| {
                let name = format!("obj-{:06}", (w * 50 + s) % objects);
                ("PUT".into(), path(Some(&name)), Some(cm(&name, s)), 200)
            }),
        ),
        (
            "list (limit 500)",
            None,
            Arc::new(|_, _| ("GET".into(), format!("{}?limit=500", path(None)), None, 200)),
        ),
        (
            "create @ paced",
            Some(cfg.paced_qps),
            Arc::new(|w, s| {
                ("POST".into(), path(None), Some(cm(&format!("paced-{w}-{s}"), s)), 201)
            }),
        ),
        (
            "update @ paced",
            Some(cfg.paced_qps),
            Arc::new(move |w, s| {
                let name = format!("obj-{:06}", (w * 31 + s * 7) % objects);
                ("PUT".into(), path(Some(&name)), Some(cm(&name, s + 1)), 200)
            }),
        ),
    ];
    for (name, qps, op) in ops {
        let pb = ProgressBar::new_spinner();
        pb.set_message(format!("{backend}: {name}"));
        pb.enable_steady_tick(Duration::from_millis(200));
        let (rate, mut samples, back) = phase(conns, cfg.duration, qps, op)
            .await
            .with_context(|| format!("{backend} {name}"))?;
        pb.finish_and_clear();
        conns = back;
        let op = match qps {
            Some(q) => name.replace("paced", &format!("{q} QPS")),
            None => name.to_owned(),
        };
        rows.push(Row {
            backend,
            op,
            rate,
            p50_ms: samples.percentile_ms(50.0),
            p99_ms: samples.percentile_ms(99.0),
        });
    }
    drop(conns);
    let (rate, mut samples) = watch_fanout(&config, cfg.watchers, 20)
        .await
        .with_context(|| format!("{backend} watch fan-out"))?;
    rows.push(Row {
        backend,
        op: format!("watch fan-out ({} watchers)", cfg.watchers),
        rate,
        p50_ms: samples.percentile_ms(50.0),
        p99_ms: samples.percentile_ms(99.0),
    });
    running.shutdown();
    Ok(rows)
}

pub async fn run(cfg: BenchConfig) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for b in &cfg.backends {
        rows.extend(run_backend(*b, &cfg).await?);
    }
    Ok(rows)
}

/// The table: per operation, each backend's rate and latency, and etcd's ratio to embedded.
pub fn render(rows: &[Row], cfg: &BenchConfig) -> String {
    let mut out = format!(
        "API server benchmark: {} stored ConfigMaps, {} concurrent clients, {:?} per phase, {} watchers\n",
        cfg.objects, cfg.clients, cfg.duration, cfg.watchers
    );
    out.push_str(&format!(
        "{:<30} {:<9} {:>10} {:>9} {:>9} {:>14}\n",
        "operation", "backend", "ops/s", "p50 ms", "p99 ms", "vs embedded"
    ));
    for r in rows {
        let base = rows.iter().find(|x| x.backend == "embedded" && x.op == r.op);
        let ratio = match base {
            Some(b) if r.backend != "embedded" && b.rate > 0.0 => {
                format!("{:.2}x ops/s", r.rate / b.rate)
            }
            _ => "-".into(),
        };
        out.push_str(&format!(
            "{:<30} {:<9} {:>10.0} {:>9.2} {:>9.2} {:>14}\n",
            r.op, r.backend, r.rate, r.p50_ms, r.p99_ms, ratio
        ));
    }
    out.push_str("Targets: p99 of single-object mutations <= 25 ms at 200 QPS; >= 2,000 gets/s.\n");
    out.push_str("(watch fan-out: ops/s = events delivered per second; latency = write sent to event received)\n");
    out
}
