//! The CustomResourceDefinition controller, run inside the API server: it keeps the registry
//! of served custom kinds equal to the established definitions in the store, establishes new
//! definitions (NamesAccepted, Established, acceptedNames, storedVersions), and cleans up a
//! deleted definition's objects before removing its cleanup finalizer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};

use super::{CLEANUP_FINALIZER, registry};
use crate::api::engine::{decode, prefix};
use crate::api::error::ApiError;
use crate::api::request::{DeleteOptions, ListOptions, Propagation, Target};
use crate::api::resources::{self, ResourceKind};
use crate::api::{Api, meta};
use crate::store::{self, EventKind};

/// How often deleting definitions are looked at again while their objects go away.
const RESYNC: Duration = Duration::from_secs(1);

fn definitions_kind() -> Result<&'static ResourceKind, ApiError> {
    resources::find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .ok_or_else(|| ApiError::internal("the customresourcedefinitions resource is missing"))
}

/// Runs until the store stops; restarts from a full list after errors.
pub async fn run(api: Arc<Api>) {
    loop {
        if let Err(e) = run_once(&api).await {
            tracing::warn!("customresourcedefinition controller: {e}; restarting");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn run_once(api: &Api) -> Result<(), ApiError> {
    let kind = definitions_kind()?;
    let at = prefix(kind, None);
    let store = api.store().clone();
    let list = store
        .list(&at, store::ListOptions::default())
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut crds: BTreeMap<String, Value> = BTreeMap::new();
    for kv in &list.items {
        crds.insert(kv.key.clone(), decode(kv)?);
    }
    sync(api, kind, &crds).await;
    let mut events =
        store.watch(&at, list.revision).await.map_err(|e| ApiError::internal(e.to_string()))?;
    loop {
        match tokio::time::timeout(RESYNC, events.next()).await {
            Err(_) if crds.values().any(meta::is_deleting) => {}
            Err(_) => continue,
            Ok(None) => return Ok(()),
            Ok(Some(ev)) => {
                let ev = ev.map_err(|e| ApiError::internal(e.to_string()))?;
                match ev.kind {
                    EventKind::Put => {
                        crds.insert(ev.kv.key.clone(), decode(&ev.kv)?);
                    }
                    EventKind::Delete => {
                        crds.remove(&ev.kv.key);
                    }
                }
            }
        }
        sync(api, kind, &crds).await;
    }
}

/// Level-triggered: serves what is established, then moves each definition along.
async fn sync(api: &Api, kind: &'static ResourceKind, crds: &BTreeMap<String, Value>) {
    let all: Vec<Value> = crds.values().cloned().collect();
    registry::replace(&all);
    for crd in &all {
        let name = meta::name(crd).to_owned();
        let r = if meta::is_deleting(crd) {
            cleanup(api, kind, crd).await
        } else if needs_status(crd) {
            establish(api, kind, crd, &all).await
        } else {
            Ok(())
        };
        if let Err(e) = r {
            tracing::debug!(definition = %name, "customresourcedefinition: {e}");
        }
    }
}

fn storage_version(crd: &Value) -> Option<String> {
    crd["spec"]["versions"]
        .as_array()?
        .iter()
        .find(|v| v["storage"] == true)
        .and_then(|v| v["name"].as_str())
        .map(str::to_owned)
}

/// Whether the status lags the spec (not established, names changed, a new storage version).
fn needs_status(crd: &Value) -> bool {
    let stored = crd["status"]["storedVersions"].as_array();
    let has_storage = storage_version(crd)
        .is_some_and(|v| stored.is_some_and(|s| s.iter().any(|x| x == v.as_str())));
    !registry::is_established(crd)
        || crd["status"]["acceptedNames"] != crd["spec"]["names"]
        || !has_storage
}

/// Another definition of the same group that already accepted one of `crd`'s names.
fn name_conflict(crd: &Value, others: &[Value]) -> Option<String> {
    let group = &crd["spec"]["group"];
    let names = &crd["spec"]["names"];
    let mine = |n: &Value| -> Vec<String> {
        let mut v: Vec<String> = [&n["plural"], &n["singular"]]
            .iter()
            .filter_map(|x| x.as_str())
            .map(str::to_owned)
            .collect();
        v.extend(
            n["shortNames"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned),
        );
        v.retain(|s| !s.is_empty());
        v
    };
    let wanted = mine(names);
    for other in
        others.iter().filter(|o| meta::name(o) != meta::name(crd) && o["spec"]["group"] == *group)
    {
        let accepted = &other["status"]["acceptedNames"];
        if let Some(clash) = mine(accepted).into_iter().find(|n| wanted.contains(n)) {
            return Some(format!("\"{clash}\" is already in use"));
        }
        if accepted["kind"] == names["kind"] {
            return Some(format!("\"{}\" is already in use", names["kind"].as_str().unwrap_or("")));
        }
    }
    let plural = names["plural"].as_str().unwrap_or("");
    let built_in = resources::KINDS
        .iter()
        .any(|k| k.group == group.as_str().unwrap_or("") && k.plural == plural);
    built_in.then(|| format!("\"{plural}\" is already in use"))
}

fn condition(ty: &str, ok: bool, reason: &str, message: &str, previous: &Value) -> Value {
    let status = if ok { "True" } else { "False" };
    let old = previous["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == ty && c["status"] == status)
        .map(|c| c["lastTransitionTime"].clone());
    json!({ "type": ty, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": old.unwrap_or_else(|| json!(meta::now_rfc3339())) })
}

async fn establish(
    api: &Api,
    kind: &'static ResourceKind,
    crd: &Value,
    all: &[Value],
) -> Result<(), ApiError> {
    let conflict = name_conflict(crd, all);
    let name = meta::name(crd).to_owned();
    api.modify(kind, None, &name, move |o| {
        let previous = o["status"].clone();
        let conditions = match &conflict {
            None => vec![
                condition("NamesAccepted", true, "NoConflicts", "no conflicts found", &previous),
                condition("Established", true, "InitialNamesAccepted", "the initial names have been accepted", &previous),
            ],
            Some(why) => vec![
                condition("NamesAccepted", false, "AllNamesConflict", why, &previous),
                condition("Established", false, "NotAccepted", "not all names are accepted", &previous),
            ],
        };
        let mut stored: Vec<Value> = previous["storedVersions"].as_array().cloned().unwrap_or_default();
        if let Some(v) = storage_version(o)
            && !stored.iter().any(|x| x == v.as_str())
        {
            stored.push(json!(v));
        }
        let accepted = if conflict.is_none() { o["spec"]["names"].clone() } else { previous["acceptedNames"].clone() };
        o["status"] = json!({ "conditions": conditions, "acceptedNames": accepted, "storedVersions": stored });
    })
    .await?;
    Ok(())
}

/// Deletes a deleting definition's objects; once none are left, lets the definition go.
async fn cleanup(api: &Api, kind: &'static ResourceKind, crd: &Value) -> Result<(), ApiError> {
    if !meta::finalizers(crd).iter().any(|f| f == CLEANUP_FINALIZER) {
        return Ok(());
    }
    if !crd["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Terminating" && c["status"] == "True")
    {
        api.modify(kind, None, meta::name(crd), |o| {
            let previous = o["status"].clone();
            let terminating = condition(
                "Terminating",
                true,
                "InstanceDeletionInProgress",
                "CustomResource deletion is in progress",
                &previous,
            );
            let mut conditions = previous["conditions"].as_array().cloned().unwrap_or_default();
            conditions.retain(|c| c["type"] != "Terminating");
            conditions.push(terminating);
            o["status"]["conditions"] = json!(conditions);
        })
        .await?;
    }
    let group = crd["spec"]["group"].as_str().unwrap_or("");
    let plural = crd["spec"]["names"]["plural"].as_str().unwrap_or("");
    let served = resources::all().into_iter().find(|k| {
        k.custom.is_some_and(|c| c.definition == meta::name(crd))
            && k.group == group
            && k.plural == plural
    });
    if let Some(objects) = served {
        let t = Target { kind: objects, namespace: None, name: None, subresource: None };
        let (items, _) = api.list_objects(&t, &ListOptions::default()).await?;
        if !items.is_empty() {
            let opts =
                DeleteOptions { propagation: Some(Propagation::Background), ..Default::default() };
            for o in items.iter().filter(|o| !meta::is_deleting(o)) {
                match api.delete_object(objects, meta::namespace(o), meta::name(o), &opts).await {
                    Ok(_) => {}
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
            return Ok(());
        }
    }
    let name = meta::name(crd).to_owned();
    match api
        .modify(kind, None, &name, |o| {
            if let Some(f) = o["metadata"]["finalizers"].as_array_mut() {
                f.retain(|x| x != CLEANUP_FINALIZER);
            }
        })
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}
