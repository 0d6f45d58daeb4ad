//! The pods/eviction subresource: a pod is deleted only if the PodDisruptionBudget covering it
//! allows one more disruption, and spending that disruption is a compare-and-swap on the
//! budget's status, so concurrent evictions never spend more than it allowed.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::retry::Retry;
use super::write::How;
use super::{Api, ApiResponse};
use crate::api::disruption_budget::{self, Verdict};
use crate::api::error::ApiError;
use crate::api::meta;
use crate::api::request::{Target, WriteOptions, delete_options};
use crate::api::resources::{self, ResourceKind, Subresource};

fn budgets_kind() -> Result<&'static ResourceKind, ApiError> {
    resources::find("policy", "v1", "poddisruptionbudgets")
        .ok_or_else(|| ApiError::internal("the poddisruptionbudgets resource is missing"))
}

impl Api {
    /// Evicts the pod `t` names, as the Eviction in `body` asks.
    pub(super) async fn evict(
        &self,
        t: &Target,
        body: Value,
        opts: &WriteOptions,
    ) -> Result<ApiResponse, ApiError> {
        let name = t.name.clone().unwrap_or_default();
        let ns = t.namespace.clone().unwrap_or_default();
        if let Some(n) = body["metadata"]["name"].as_str().filter(|n| !n.is_empty())
            && n != name
        {
            return Err(ApiError::bad_request(format!(
                "name in URL does not match name in Eviction object: {name} vs {n}"
            )));
        }
        let given = body.get("deleteOptions").filter(|d| d.is_object());
        let mut delete = delete_options(&HashMap::new(), given)?;
        delete.dry_run |= opts.dry_run;
        let budgets = budgets_kind()?;
        let mut retry = Retry::default();
        loop {
            let (pod, pod_rev) = self.load(t.kind, Some(&ns), &name).await?;
            let verdict = if disruption_budget::ignores_budgets(&pod) {
                Verdict::Delete { only_this_version: false }
            } else {
                let labels = meta::labels(&pod);
                let mut covering: Vec<_> = self
                    .load_all(budgets, &ns)
                    .await?
                    .into_iter()
                    .filter(|(b, _)| disruption_budget::covers(b, &labels))
                    .collect();
                match covering.len() {
                    0 => Verdict::Delete { only_this_version: false },
                    1 => {
                        let (budget, rev) = covering.remove(0);
                        let verdict = disruption_budget::decide(&pod, &budget)?;
                        if verdict == Verdict::Spend && !delete.dry_run {
                            match self.spend_disruption(budgets, &ns, budget, rev, &name).await {
                                Err(e) if retry.again(&e).await => continue,
                                r => r?,
                            }
                        }
                        verdict
                    }
                    _ => {
                        return Err(ApiError::internal(
                            "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                        ));
                    }
                }
            };
            if verdict == (Verdict::Delete { only_this_version: true }) {
                delete.precondition_rv = Some(pod_rev.to_string());
            }
            self.delete_object(t.kind, Some(&ns), &name, &delete).await?;
            return Ok(ApiResponse::Object {
                code: 201,
                body: json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
                warnings: Vec::new(),
            });
        }
    }

    /// Records the eviction of `pod` in `budget` (read at `rev`): fails with a lost race when
    /// another write came first.
    async fn spend_disruption(
        &self,
        kind: &'static ResourceKind,
        ns: &str,
        budget: Value,
        rev: crate::store::Revision,
        pod: &str,
    ) -> Result<(), ApiError> {
        let mut new = budget.clone();
        disruption_budget::spend(&mut new, pod, &meta::now_rfc3339());
        let t = Target {
            kind,
            namespace: Some(ns.to_owned()),
            name: Some(meta::name(&budget).to_owned()),
            subresource: Some(Subresource::Status),
        };
        let opts =
            WriteOptions { field_manager: Some("kube-apiserver".into()), ..Default::default() };
        let how = How { sub: Some(Subresource::Status), record: true };
        self.store_update(&t, &budget, rev, new, &opts, how).await.map(|_| ())
    }
}
