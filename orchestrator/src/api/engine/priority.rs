//! Pod priority, like the Priority admission plugin: `priorityClassName` (or the cluster's
//! global default class) is resolved into `spec.priority` and `spec.preemptionPolicy` when a pod
//! is created, so the scheduler reads numbers.

use serde_json::{Value, json};

use super::{Api, decode, prefix};
use crate::api::error::ApiError;
use crate::api::resources;

/// The classes every cluster has.
pub const SYSTEM_PRIORITY_CLASSES: [(&str, i64); 2] =
    [("system-cluster-critical", 2_000_000_000), ("system-node-critical", 2_000_001_000)];

impl Api {
    pub(super) async fn admit_priority(&self, pod: &mut Value) -> Result<(), ApiError> {
        let kind = resources::find("scheduling.k8s.io", "v1", "priorityclasses")
            .ok_or_else(|| ApiError::internal("priorityclasses are not served"))?;
        let named = pod["spec"]["priorityClassName"].as_str().filter(|n| !n.is_empty());
        let class = match named {
            Some(n) => match self.load(kind, None, n).await {
                Ok((c, _)) => Some(c),
                Err(e) if e.code == 404 => {
                    return Err(ApiError::forbidden(format!(
                        "pods \"{}\" is forbidden: no PriorityClass with name {n} was found",
                        pod["metadata"]["name"].as_str().unwrap_or("")
                    )));
                }
                Err(e) => return Err(e),
            },
            None => {
                let list = self
                    .store
                    .list(&prefix(kind, None), Default::default())
                    .await
                    .map_err(|e| ApiError::from_store(e, kind, ""))?;
                list.items
                    .iter()
                    .filter_map(|kv| decode(kv).ok())
                    .find(|c| c["globalDefault"] == json!(true))
            }
        };
        let spec = &mut pod["spec"];
        let Some(class) = class else {
            if spec["priority"].is_null() {
                spec["priority"] = json!(0);
            }
            return Ok(());
        };
        let value = class["value"].as_i64().unwrap_or(0);
        if let Some(given) = spec["priority"].as_i64()
            && given != value
        {
            return Err(ApiError::forbidden(format!(
                "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {value} from the given PriorityClass name"
            )));
        }
        spec["priority"] = json!(value);
        spec["priorityClassName"] = class["metadata"]["name"].clone();
        if spec["preemptionPolicy"].is_null() {
            spec["preemptionPolicy"] =
                class.get("preemptionPolicy").cloned().unwrap_or(json!("PreemptLowerPriority"));
        }
        Ok(())
    }
}
