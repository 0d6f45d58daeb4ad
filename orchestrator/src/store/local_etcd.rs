//! Runs Debian's `etcd` on loopback for tests and benchmarks: free ports, a private data
//! directory, stopped when dropped.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::StoreError;

pub const ETCD_BINARY: &str = "/usr/bin/etcd";

pub struct LocalEtcd {
    child: Child,
    pub endpoint: String,
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl LocalEtcd {
    /// Starts etcd with its data in `dir`; returns once it answers.
    pub async fn start(dir: &Path) -> Result<Self, StoreError> {
        let err = |e: std::io::Error| StoreError::Backend(format!("starting {ETCD_BINARY}: {e}"));
        let (client, peer) = (free_port().map_err(err)?, free_port().map_err(err)?);
        let endpoint = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new(ETCD_BINARY)
            .arg("--data-dir")
            .arg(dir)
            .args([
                "--name",
                "ringfence",
                "--listen-client-urls",
                &endpoint,
                "--advertise-client-urls",
                &endpoint,
            ])
            .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("ringfence={peer_url}")])
            .args(["--log-level", "error", "--logger", "zap"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(err)?;
        let etcd = Self { child, endpoint };
        let start = Instant::now();
        loop {
            if let Ok(s) = super::EtcdStore::connect(&etcd.endpoint).await
                && s.current_revision_checked().await
            {
                return Ok(etcd);
            }
            if start.elapsed() > Duration::from_secs(20) {
                return Err(StoreError::Backend(format!(
                    "etcd at {} did not come up",
                    etcd.endpoint
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for LocalEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
