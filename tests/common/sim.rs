//! `ringfence sim-nodes` started for one test against a [`Cluster`](super::Cluster).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use super::Cluster;

pub struct SimNodes {
    child: Child,
}

impl SimNodes {
    /// Starts `count` nodes named `prefix-0..`; returns once they are registered.
    pub fn start(c: &Cluster, prefix: &str, count: usize, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ringfence"))
            .arg("sim-nodes")
            .arg("--kubeconfig")
            .arg(&c.kubeconfig)
            .args(["--prefix", prefix, "--count", &count.to_string(), "--heartbeat", "0.5"])
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start ringfence sim-nodes");
        let stdout = child.stdout.take().expect("stdout");
        let ready = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.contains("simulated nodes ready"));
        assert!(ready, "sim-nodes did not come up");
        Self { child }
    }

    /// Stops the nodes at once: no more heartbeats, nothing else.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SimNodes {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a pod is Ready and not going away.
pub fn ready(p: &Value) -> bool {
    p["metadata"]["deletionTimestamp"].is_null()
        && p["status"]["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// A Deployment of pause containers (one-second grace), with extra spec and pod spec lines.
pub fn deployment(name: &str, replicas: u32, extra_spec: &str, pod_spec: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
{extra_spec}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{{name: app, image: "registry.k8s.io/pause:3.9"}}]
{pod_spec}
"#
    )
}
