//! `ringfence sim-nodes` started for one test against a [`Cluster`](super::Cluster).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

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
