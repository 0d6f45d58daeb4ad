//! apps/v1 StatefulSet rules beyond those of every workload (a selector matching the
//! template, replicas not negative, restartPolicy Always): its policies by name, numbers that
//! are not negative, named claim templates, and an update that may change only some of the
//! spec, as Kubernetes allows.

use serde_json::Value;

use super::error::Cause;
use super::validation::{is_dns_label, is_dns_subdomain};

/// What a StatefulSet adds to a workload: its policies by name, a partition and history that
/// are not negative, claim templates with names.
pub fn validate(spec: &Value, causes: &mut Vec<Cause>) {
    let one_of = |field: &str, v: &Value, allowed: &[&str], causes: &mut Vec<Cause>| {
        if let Some(s) = v.as_str()
            && !allowed.contains(&s)
        {
            let list: Vec<String> = allowed.iter().map(|a| format!("\"{a}\"")).collect();
            causes.push(Cause {
                reason: "FieldValueNotSupported",
                field: field.into(),
                message: format!(
                    "Unsupported value: \"{s}\": supported values: {}",
                    list.join(", ")
                ),
            });
        }
    };
    one_of(
        "spec.podManagementPolicy",
        &spec["podManagementPolicy"],
        &["OrderedReady", "Parallel"],
        causes,
    );
    one_of(
        "spec.updateStrategy.type",
        &spec["updateStrategy"]["type"],
        &["RollingUpdate", "OnDelete"],
        causes,
    );
    for when in ["whenDeleted", "whenScaled"] {
        one_of(
            &format!("spec.persistentVolumeClaimRetentionPolicy.{when}"),
            &spec["persistentVolumeClaimRetentionPolicy"][when],
            &["Retain", "Delete"],
            causes,
        );
    }
    if spec["updateStrategy"]["type"] == "OnDelete"
        && !spec["updateStrategy"]["rollingUpdate"].is_null()
    {
        causes.push(Cause {
            reason: "FieldValueForbidden",
            field: "spec.updateStrategy.rollingUpdate".into(),
            message: "Forbidden: only allowed for updateStrategy 'RollingUpdate'".into(),
        });
    }
    for (field, v) in [
        (
            "spec.updateStrategy.rollingUpdate.partition",
            &spec["updateStrategy"]["rollingUpdate"]["partition"],
        ),
        ("spec.revisionHistoryLimit", &spec["revisionHistoryLimit"]),
        ("spec.minReadySeconds", &spec["minReadySeconds"]),
        ("spec.ordinals.start", &spec["ordinals"]["start"]),
    ] {
        if let Some(n) = v.as_i64()
            && n < 0
        {
            causes.push(Cause::invalid(
                field,
                format!("Invalid value: {n}: must be greater than or equal to 0"),
            ));
        }
    }
    if let Some(name) = spec["serviceName"].as_str()
        && !name.is_empty()
        && !is_dns_label(name)
    {
        causes.push(Cause::invalid(
            "spec.serviceName",
            format!("Invalid value: \"{name}\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'"),
        ));
    }
    let claims = spec["volumeClaimTemplates"].as_array();
    for (i, c) in claims.into_iter().flatten().enumerate() {
        let at = format!("spec.volumeClaimTemplates[{i}]");
        match c["metadata"]["name"].as_str() {
            None | Some("") => causes.push(Cause::required(&format!("{at}.metadata.name"))),
            Some(n) if !is_dns_subdomain(n) => causes.push(Cause::invalid(
                &format!("{at}.metadata.name"),
                format!("Invalid value: \"{n}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'"),
            )),
            Some(_) => {}
        }
        if c["spec"]["accessModes"].as_array().is_none_or(|m| m.is_empty()) {
            causes.push(Cause::required(&format!("{at}.spec.accessModes")));
        }
    }
}

/// The spec fields of a StatefulSet an update may change; any other change is refused.
const MUTABLE: &[&str] = &[
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "revisionHistoryLimit",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
];

/// The refusal of an update that changes any other spec field, if it does.
pub fn update(old: &Value, new: &Value) -> Option<Cause> {
    let fixed = |v: &Value| {
        let mut spec = v["spec"].as_object().cloned().unwrap_or_default();
        spec.retain(|k, _| !MUTABLE.contains(&k.as_str()));
        spec
    };
    (fixed(old) != fixed(new)).then(|| {
        let allowed: Vec<String> = MUTABLE.iter().map(|f| format!("'{f}'")).collect();
        Cause {
            reason: "FieldValueForbidden",
            field: "spec".into(),
            message: format!(
                "Forbidden: a statefulset's spec may change only in {}",
                allowed.join(", ")
            ),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::resources::find;
    use super::super::validation::{immutable, validate};

    #[test]
    fn only_some_spec_fields_change_and_bad_values_are_named() {
        let sts = find("apps", "v1", "statefulsets").unwrap();
        let s = |replicas: i64, service: &str, policy: &str| {
            serde_json::json!({
                "metadata": {"name": "web"},
                "spec": {"replicas": replicas, "serviceName": service, "podManagementPolicy": policy,
                         "selector": {"matchLabels": {"app": "web"}},
                         "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                         "template": {"metadata": {"labels": {"app": "web"}},
                                      "spec": {"containers": [{"name": "c", "image": "i"}]}}}
            })
        };
        let base = s(1, "web", "OrderedReady");
        assert!(validate(sts, &base).is_empty(), "{:?}", validate(sts, &base));
        assert!(immutable(sts, &base, &s(5, "web", "OrderedReady")).is_empty());
        let mut retemplated = base.clone();
        retemplated["spec"]["template"]["spec"]["containers"][0]["image"] = "j".into();
        retemplated["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = 2.into();
        assert!(immutable(sts, &base, &retemplated).is_empty());
        for changed in [s(1, "other", "OrderedReady"), s(1, "web", "Parallel")] {
            let causes = immutable(sts, &base, &changed);
            assert_eq!(causes.len(), 1);
            assert_eq!(
                (causes[0].reason, causes[0].field.as_str()),
                ("FieldValueForbidden", "spec")
            );
        }
        let fields = |obj: &serde_json::Value| {
            validate(sts, obj).into_iter().map(|c| c.field).collect::<Vec<_>>()
        };
        assert_eq!(fields(&s(-1, "web", "OrderedReady")), ["spec.replicas"]);
        assert_eq!(fields(&s(1, "web", "Whenever")), ["spec.podManagementPolicy"]);
        assert_eq!(fields(&s(1, "Web_Service", "Parallel")), ["spec.serviceName"]);
        let mut negative = base.clone();
        negative["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = (-1).into();
        assert_eq!(fields(&negative), ["spec.updateStrategy.rollingUpdate.partition"]);
        let mut unnamed = base.clone();
        unnamed["spec"]["volumeClaimTemplates"] =
            serde_json::json!([{"spec": {"accessModes": ["ReadWriteOnce"]}}]);
        assert_eq!(fields(&unnamed), ["spec.volumeClaimTemplates[0].metadata.name"]);
        let rev = find("apps", "v1", "controllerrevisions").unwrap();
        let r = |n: i64, data: &str| serde_json::json!({"metadata": {"name": "r"}, "revision": n, "data": {"x": data}});
        assert_eq!(validate(rev, &r(-1, "a")).len(), 1);
        assert!(immutable(rev, &r(1, "a"), &r(2, "a")).is_empty(), "renumbering is allowed");
        assert_eq!(immutable(rev, &r(1, "a"), &r(1, "b")).len(), 1);
    }
}
