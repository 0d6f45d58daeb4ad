//! Requests to a version served by conversion ([`crate::api::conversion`]): bodies are checked
//! as the served kind and converted to the stored one, the request runs against the stored
//! kind, and whatever comes back (objects, lists, watch events) is converted to the served
//! version. Patches are applied to the served version's view of the object.

use futures_util::StreamExt;
use serde_json::Value;

use super::retry::Retry;
use super::{Api, ApiResponse, body};
use crate::api::conversion::Conversion;
use crate::api::error::ApiError;
use crate::api::request::{ApiRequest, Operation, PatchType, Target, User};
use crate::api::{meta, patch};

/// `v` converted when it is an object of the stored kind (lists, Tables and Statuses pass
/// through, with their items or rows converted).
fn outward(c: Conversion, served: &str, mut v: Value) -> Value {
    let stored_kind = c.storage.kind;
    if v["kind"] == stored_kind {
        return (c.from_storage)(v);
    }
    if let Some(items) = v.get_mut("items").and_then(Value::as_array_mut) {
        for item in items.iter_mut() {
            *item = (c.from_storage)(item.take());
        }
        // The list is of the served version too.
        v["apiVersion"] = Value::String(served.to_owned());
    }
    if let Some(rows) = v.get_mut("rows").and_then(Value::as_array_mut) {
        for row in rows.iter_mut().filter(|r| r["object"]["kind"] == stored_kind) {
            row["object"] = (c.from_storage)(row["object"].take());
        }
    }
    v
}

impl Api {
    /// Runs an authorized request for `served` (a converted version) against its storage.
    pub(super) async fn execute_converted(
        &self,
        user: &User,
        req: ApiRequest,
        c: Conversion,
    ) -> Result<ApiResponse, ApiError> {
        let served = req.target.kind;
        let api_version = served.api_version();
        let target = Target { kind: c.storage, ..req.target.clone() };
        let inward = |b: Value, v| -> Result<Value, ApiError> {
            let mut warnings = Vec::new();
            let checked = body::check(served, b, v, &mut warnings)?;
            Ok((c.to_storage)(checked))
        };
        let op = match req.op {
            Operation::Create { body, opts } => {
                Operation::Create { body: inward(body, opts.field_validation)?, opts }
            }
            Operation::Update { body, opts } => {
                Operation::Update { body: inward(body, opts.field_validation)?, opts }
            }
            Operation::Patch { patch_type, patch, opts } => {
                return self
                    .patch_converted(user, req.target, target, c, patch_type, patch, opts)
                    .await;
            }
            op => op,
        };
        let resp =
            self.execute_authorized(user, ApiRequest { target, op, format: req.format }).await?;
        Ok(match resp {
            ApiResponse::Object { code, body, warnings } => {
                ApiResponse::Object { code, body: outward(c, &api_version, body), warnings }
            }
            ApiResponse::List(list) => ApiResponse::Object {
                code: 200,
                body: outward(c, &api_version, list.into_value()),
                warnings: Vec::new(),
            },
            ApiResponse::Watch(events) => ApiResponse::Watch(Box::pin(events.map(move |mut e| {
                if e["type"] == "BOOKMARK" {
                    e["object"]["apiVersion"] = Value::String(api_version.clone());
                } else {
                    e["object"] = outward(c, &api_version, e["object"].take());
                }
                e
            }))),
        })
    }

    /// A patch written against the served version: read, convert, patch, convert back and
    /// update at the revision read (again on a lost race unless the patch named a version).
    #[allow(clippy::too_many_arguments)]
    async fn patch_converted(
        &self,
        user: &User,
        served: Target,
        stored: Target,
        c: Conversion,
        patch_type: PatchType,
        patch_body: Value,
        opts: crate::api::request::WriteOptions,
    ) -> Result<ApiResponse, ApiError> {
        if patch_type == PatchType::Apply {
            return Err(ApiError::unsupported_media_type(&format!(
                "application/apply-patch+yaml for {} (apply it as {})",
                served.kind.api_version(),
                c.storage.api_version()
            )));
        }
        let name = served.name.clone().unwrap_or_default();
        let pinned = meta::resource_version(&patch_body).is_some()
            || (patch_type == PatchType::Json
                && patch_body.to_string().contains("resourceVersion"));
        let mut retry = Retry::default();
        loop {
            let (current, rev) = self.load(c.storage, stored.namespace.as_deref(), &name).await?;
            let view = (c.from_storage)(current);
            let patched = match patch_type {
                PatchType::Json => patch::json_patch(&view, &patch_body),
                PatchType::Merge => patch::merge_patch(&view, &patch_body),
                _ => patch::strategic_merge(&view, &patch_body, served.kind),
            }
            .map_err(|m| ApiError::new(422, "Invalid", m))?;
            let mut warnings = Vec::new();
            let mut body = (c.to_storage)(body::check(
                served.kind,
                patched,
                opts.field_validation,
                &mut warnings,
            )?);
            if !pinned {
                meta::set_resource_version(&mut body, rev);
            }
            let op = Operation::Update { body, opts: opts.clone() };
            let req = ApiRequest { target: stored.clone(), op, format: Default::default() };
            match self.execute_authorized(user, req).await {
                Ok(ApiResponse::Object { code, body, warnings }) => {
                    let body = outward(c, &served.kind.api_version(), body);
                    return Ok(ApiResponse::Object { code, body, warnings });
                }
                Ok(_) => {
                    return Err(ApiError::internal("an update answered with a watch or a list"));
                }
                Err(e) if e.code == 409 && !pinned => {
                    let raced = ApiError { lost_race: true, ..e };
                    if !retry.again(&raced).await {
                        return Err(raced);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}
