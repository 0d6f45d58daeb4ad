//! LimitRange admission: a pod gets the namespace's defaults before validation and must keep
//! its bounds after, as must a claim's requested storage (403 Forbidden with Kubernetes'
//! words when broken).

use serde_json::Value;

use super::Api;
use crate::api::error::ApiError;
use crate::api::limit_range;
use crate::api::resources;

impl Api {
    /// The LimitRanges of `ns`, with their defaults applied to `pod`.
    pub(super) async fn default_from_limit_ranges(
        &self,
        pod: &mut Value,
        ns: &str,
    ) -> Result<Vec<Value>, ApiError> {
        let kind = resources::find("", "v1", "limitranges")
            .ok_or_else(|| ApiError::internal("the limitranges resource is missing"))?;
        let ranges: Vec<Value> =
            self.load_all(kind, ns).await?.into_iter().map(|(r, _)| r).collect();
        limit_range::apply_defaults(pod, &ranges);
        Ok(ranges)
    }
}

impl Api {
    /// Refuses a claim whose requested storage is outside its namespace's bounds.
    pub(super) async fn check_claim_limits(
        &self,
        claim: &Value,
        name: &str,
        ns: &str,
    ) -> Result<(), ApiError> {
        let kind = resources::find("", "v1", "limitranges")
            .ok_or_else(|| ApiError::internal("the limitranges resource is missing"))?;
        let ranges: Vec<Value> =
            self.load_all(kind, ns).await?.into_iter().map(|(r, _)| r).collect();
        forbid(
            &format!("persistentvolumeclaims \"{name}\""),
            limit_range::claim_violations(claim, &ranges),
        )
    }
}

/// Refuses `pod` if it breaks `ranges`.
pub(super) fn check_limit_ranges(
    pod: &Value,
    name: &str,
    ranges: &[Value],
) -> Result<(), ApiError> {
    forbid(&format!("pods \"{name}\""), limit_range::violations(pod, ranges))
}

fn forbid(what: &str, errors: Vec<String>) -> Result<(), ApiError> {
    let why = match errors.as_slice() {
        [] => return Ok(()),
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    };
    Err(ApiError::forbidden(format!("{what} is forbidden: {why}")))
}
