//! A two-node cluster for one Service data path: `ringfence up` in the host's namespace
//! (node A, control plane included) and `ringfence cri` + `ringfence node` inside node B's
//! namespace, which gets its pod range from the control plane; each node routes the other's
//! pods over the link. Both offer the `sentry` handler only (no microVM templates built in the
//! background while measuring).

use std::fs::File;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::{Node, Pod};
use orchestrator::api::request::{DeleteOptions, ListOptions};
use orchestrator::kube::Kube;

use super::model::ProxyMode;
use super::topology::{NodeLink, Ranges};
use crate::bench::pods::{self, Up};

pub const NODE_A: &str = "node-a";
pub const NODE_B: &str = "node-b";

pub struct Cluster {
    pub kube: Kube,
    /// Node B's agent, then its runtime: stopped in that order.
    node_b: Vec<Child>,
    up: Option<Up>,
}

fn log_file(dir: &Path, name: &str) -> anyhow::Result<File> {
    File::create(dir.join(name)).with_context(|| format!("creating {name} in {}", dir.display()))
}

impl Cluster {
    /// Starts both nodes on state under `dir` (their logs land there too), imports `image` on
    /// both and waits for two Ready nodes.
    pub fn start(
        rt: &tokio::runtime::Runtime,
        mode: ProxyMode,
        ranges: &Ranges,
        link: &NodeLink,
        dir: &Path,
        image: &Path,
    ) -> anyhow::Result<Cluster> {
        let (data_a, data_b) = (dir.join("node-a"), dir.join("node-b"));
        std::fs::create_dir_all(&data_b)?;
        let host = link.host_ip.to_string();
        let listen = format!("{host}:0");
        let (pods_a, pods_b) = (ranges.node_a_pods(mode), ranges.node_b_pods(mode));
        let (services, bridge) = (ranges.services(mode), ranges.bridge(mode));
        let args = [
            "--listen",
            &listen,
            "--node-address",
            &host,
            "--node-name",
            NODE_A,
            "--node-port",
            "0",
            "--bridge",
            &bridge,
            "--pod-cidr",
            &pods_a,
            "--cluster-cidr",
            &pods_b,
            "--service-cidr",
            &services,
            "--proxy-mode",
            mode.id(),
            "--runtime-handlers",
            "sentry",
        ];
        let (up, kubeconfig) = Up::start_with(&data_a, &args)?;
        let mut cluster = Cluster {
            kube: rt.block_on(pods::connect(&kubeconfig))?,
            node_b: Vec::new(),
            up: Some(up),
        };
        pods::import(&data_a, image)?;
        pods::import(&data_b, image)?;

        let ringfence = std::env::current_exe()?;
        let socket = data_b.join("cri.sock");
        let cri = link
            .ns
            .command(&ringfence)
            .arg("cri")
            .arg("--socket")
            .arg(&socket)
            .arg("--data-dir")
            .arg(&data_b)
            .args(["--runtime-handlers", "sentry"])
            .stdout(Stdio::null())
            .stderr(log_file(dir, "node-b-cri.log")?)
            .spawn()
            .context("starting node B's runtime")?;
        cluster.node_b.push(cri);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !socket.exists() {
            if Instant::now() > deadline {
                bail!("node B's runtime did not listen within 20 s (see {})", dir.display());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let agent = link
            .ns
            .command(&ringfence)
            .args(["node", "--name", NODE_B, "--kubeconfig"])
            .arg(&kubeconfig)
            .arg("--cri-socket")
            .arg(&socket)
            .args(["--address", &link.node_ip.to_string(), "--port", "0", "--log-dir"])
            .arg(data_b.join("logs"))
            .arg("--root-dir")
            .arg(data_b.join("node"))
            .args(["--proxy-mode", mode.id()])
            .stdout(Stdio::null())
            .stderr(log_file(dir, "node-b-agent.log")?)
            .spawn()
            .context("starting node B's agent")?;
        cluster.node_b.insert(0, agent);
        rt.block_on(cluster.wait_ready(&[NODE_A, NODE_B]))?;
        Ok(cluster)
    }

    async fn wait_ready(&self, nodes: &[&str]) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut ready = 0;
            for name in nodes {
                let n = self.kube.get::<Node>(None, name).await?;
                let conditions = n.and_then(|n| n.status).and_then(|s| s.conditions);
                if conditions
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
                {
                    ready += 1;
                }
            }
            if ready == nodes.len() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("nodes {nodes:?} not Ready within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Deletes every pod of the default namespace and waits until they are gone, so that both
    /// runtimes tear their sandboxes down before they stop.
    pub async fn delete_pods(&self) -> anyhow::Result<()> {
        let pods = self.kube.list::<Pod>(Some("default")).await?;
        for p in pods {
            let name = p.metadata.name.unwrap_or_default();
            let now = DeleteOptions { grace_period: Some(0), ..Default::default() };
            let _ = self.kube.delete::<Pod>(Some("default"), &name, now).await;
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let (left, _) =
                self.kube.list_selected::<Pod>(Some("default"), ListOptions::default()).await?;
            if left.is_empty() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!("pods were not deleted within 60 s")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &mut self.node_b {
            crate::bench::process::terminate(c, Duration::from_secs(20));
        }
        drop(self.up.take());
    }
}
