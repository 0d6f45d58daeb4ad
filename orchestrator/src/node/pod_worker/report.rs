//! Writing the pod's status: the runtime's current runs are read once more (after the
//! sync's starts and kills), the status is built by [`super::status`], and written through
//! the status subresource only when something besides timestamps changed.

use std::collections::HashMap;
use std::time::Instant;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::observe::container_run;
use super::status::{StatusInputs, comparable, pod_status};
use super::{PodWorker, spec};
use crate::node::error::NodeError;

impl PodWorker {
    pub(super) async fn report(&mut self, pod: &Pod) -> Result<(), NodeError> {
        let mut cri = self.shared.cri.clone();
        let mut runs = HashMap::new();
        for (name, r) in &self.memory.containers {
            if let Some(id) = &r.id
                && let Some(run) = container_run(&mut cri, id).await
            {
                runs.insert(name.clone(), run);
            }
        }
        let inputs = StatusInputs {
            memory: &self.memory,
            runs: &runs,
            host_ip: &self.shared.address,
            now: Instant::now(),
            wall: Time(chrono::Utc::now()),
        };
        let status = pod_status(pod, &inputs);
        let unchanged = comparable(&status);
        if self.last_status.as_ref() == Some(&unchanged) {
            return Ok(());
        }
        let (ns, name) = (spec::namespace(pod), spec::name(pod));
        match self.shared.kube.patch_status::<Pod, _>(Some(ns), name, &status).await {
            Ok(_) => {}
            // Deleted meanwhile: nothing left to report to.
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
        self.last_status = Some(unchanged);
        Ok(())
    }
}
