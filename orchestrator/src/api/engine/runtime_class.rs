//! Pods and their RuntimeClass, like the RuntimeClass admission plugin: a pod naming a class
//! that does not exist is refused, and the class's fixed overhead (what its sandboxes cost the
//! node beyond the pod's own requests: a VMM, a guest kernel) becomes `spec.overhead`, which
//! the scheduler counts.

use serde_json::Value;

use super::Api;
use crate::api::error::ApiError;
use crate::api::resources;

impl Api {
    pub(super) async fn admit_runtime_class(&self, pod: &mut Value) -> Result<(), ApiError> {
        let Some(name) = pod["spec"]["runtimeClassName"].as_str().filter(|n| !n.is_empty()) else {
            return Ok(());
        };
        let kind = resources::find("node.k8s.io", "v1", "runtimeclasses")
            .ok_or_else(|| ApiError::internal("runtimeclasses are not served"))?;
        let class = match self.load(kind, None, name).await {
            Ok((c, _)) => c,
            Err(e) if e.code == 404 => {
                return Err(ApiError::forbidden(format!(
                    "pods \"{}\" is forbidden: pod rejected: RuntimeClass \"{name}\" not found",
                    pod["metadata"]["name"].as_str().unwrap_or("")
                )));
            }
            Err(e) => return Err(e),
        };
        let fixed = &class["overhead"]["podFixed"];
        if fixed.is_null() {
            return Ok(());
        }
        match &pod["spec"]["overhead"] {
            Value::Null => pod["spec"]["overhead"] = fixed.clone(),
            given if given == fixed => {}
            _ => {
                return Err(ApiError::forbidden(format!(
                    "pods \"{}\" is forbidden: pod rejected: Pod's Overhead doesn't match \
                     RuntimeClass's defined Overhead",
                    pod["metadata"]["name"].as_str().unwrap_or("")
                )));
            }
        }
        Ok(())
    }
}
