//! A CustomResourceDefinition as Kubernetes checks it (names, scope, versions, structural
//! schemas, subresources, printer columns) and the served kinds it describes.

use serde_json::Value;

use super::{CustomKind, PrinterColumn, ScalePaths};
use crate::api::error::Cause;
use crate::api::resources::{ResourceKind, Storage, Subresource};
use crate::api::validation::{is_dns_label, is_dns_subdomain};

const COLUMN_TYPES: [&str; 5] = ["integer", "number", "string", "boolean", "date"];
const SCHEMA_TYPES: [&str; 6] = ["object", "array", "string", "integer", "number", "boolean"];

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

/// Whether `name` is a lowercase RFC 1123 label (what plural and singular names must be).
fn check_name(causes: &mut Vec<Cause>, field: &str, name: &str, required: bool) {
    if name.is_empty() {
        if required {
            causes.push(Cause::required(field));
        }
    } else if !is_dns_label(name) {
        causes.push(Cause::invalid(
            field,
            format!("Invalid value: \"{name}\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"),
        ));
    }
}

/// Every problem with a definition about to be stored.
pub fn validate(crd: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let spec = &crd["spec"];
    let group = str_of(spec, "group");
    if group.is_empty() {
        causes.push(Cause::required("spec.group"));
    } else if !is_dns_subdomain(group) || !group.contains('.') {
        causes.push(Cause::invalid(
            "spec.group",
            format!("Invalid value: \"{group}\": should be a domain with at least one dot"),
        ));
    }
    let names = &spec["names"];
    let plural = str_of(names, "plural");
    check_name(&mut causes, "spec.names.plural", plural, true);
    check_name(&mut causes, "spec.names.singular", str_of(names, "singular"), false);
    for (i, s) in names["shortNames"].as_array().into_iter().flatten().enumerate() {
        check_name(
            &mut causes,
            &format!("spec.names.shortNames[{i}]"),
            s.as_str().unwrap_or(""),
            true,
        );
    }
    for (i, s) in names["categories"].as_array().into_iter().flatten().enumerate() {
        check_name(
            &mut causes,
            &format!("spec.names.categories[{i}]"),
            s.as_str().unwrap_or(""),
            true,
        );
    }
    let kind = str_of(names, "kind");
    if kind.is_empty() {
        causes.push(Cause::required("spec.names.kind"));
    } else if !kind.starts_with(|c: char| c.is_ascii_alphabetic())
        || !kind.chars().all(|c| c.is_ascii_alphanumeric())
    {
        causes.push(Cause::invalid(
            "spec.names.kind",
            format!("Invalid value: \"{kind}\": must be a valid kind name (letters and digits, starting with a letter)"),
        ));
    }
    let name = crd["metadata"]["name"].as_str().unwrap_or("");
    if !plural.is_empty() && !group.is_empty() && name != format!("{plural}.{group}") {
        causes.push(Cause::invalid(
            "metadata.name",
            format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    match str_of(spec, "scope") {
        "Namespaced" | "Cluster" => {}
        "" => causes.push(Cause::required("spec.scope")),
        other => causes.push(unsupported("spec.scope", other, &["Cluster", "Namespaced"])),
    }
    match spec["conversion"]["strategy"].as_str() {
        None | Some("None") => {}
        Some(other) => causes.push(unsupported("spec.conversion.strategy", other, &["None"])),
    }
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    if versions.is_empty() {
        causes.push(Cause::required("spec.versions"));
    } else {
        let storage = versions.iter().filter(|v| v["storage"] == true).count();
        if storage != 1 {
            causes.push(Cause::invalid(
                "spec.versions",
                format!("Invalid value: {storage}: must have exactly one version marked as storage version"),
            ));
        }
        if !versions.iter().any(|v| v["served"] == true) {
            causes.push(Cause::invalid(
                "spec.versions",
                "Invalid value: \"no served versions\": must have at least one served version",
            ));
        }
    }
    let mut seen = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        let at = format!("spec.versions[{i}]");
        let vname = str_of(v, "name");
        check_name(&mut causes, &format!("{at}.name"), vname, true);
        if seen.contains(&vname) {
            causes.push(Cause {
                reason: "FieldValueDuplicate",
                field: format!("{at}.name"),
                message: format!("Duplicate value: \"{vname}\""),
            });
        }
        seen.push(vname);
        match v["schema"].get("openAPIV3Schema") {
            None => causes.push(Cause {
                reason: "FieldValueRequired",
                field: format!("{at}.schema.openAPIV3Schema"),
                message: "Required value: schemas are required".into(),
            }),
            Some(s) => structural(s, &format!("{at}.schema.openAPIV3Schema"), true, &mut causes),
        }
        if let Some(scale) = v["subresources"].get("scale") {
            let sat = format!("{at}.subresources.scale");
            path_under(
                &mut causes,
                &format!("{sat}.specReplicasPath"),
                scale,
                "specReplicasPath",
                ".spec.",
                true,
            );
            path_under(
                &mut causes,
                &format!("{sat}.statusReplicasPath"),
                scale,
                "statusReplicasPath",
                ".status.",
                true,
            );
            path_under(
                &mut causes,
                &format!("{sat}.labelSelectorPath"),
                scale,
                "labelSelectorPath",
                ".",
                false,
            );
        }
        for (j, c) in v["additionalPrinterColumns"].as_array().into_iter().flatten().enumerate() {
            let cat = format!("{at}.additionalPrinterColumns[{j}]");
            if str_of(c, "name").is_empty() {
                causes.push(Cause::required(&format!("{cat}.name")));
            }
            let ty = str_of(c, "type");
            if !COLUMN_TYPES.contains(&ty) {
                causes.push(unsupported(&format!("{cat}.type"), ty, &COLUMN_TYPES));
            }
            if str_of(c, "jsonPath").is_empty() {
                causes.push(Cause::required(&format!("{cat}.jsonPath")));
            } else if let Err(e) = super::json_path::JsonPath::parse(str_of(c, "jsonPath")) {
                causes.push(Cause::invalid(
                    &format!("{cat}.jsonPath"),
                    format!("Invalid value: \"{}\": {e}", str_of(c, "jsonPath")),
                ));
            }
        }
    }
    causes
}

fn unsupported(field: &str, value: &str, supported: &[&str]) -> Cause {
    let list: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
    Cause {
        reason: "FieldValueNotSupported",
        field: field.to_owned(),
        message: format!("Unsupported value: \"{value}\": supported values: {}", list.join(", ")),
    }
}

fn path_under(
    causes: &mut Vec<Cause>,
    field: &str,
    obj: &Value,
    key: &str,
    prefix: &str,
    required: bool,
) {
    match obj[key].as_str() {
        None | Some("") if required => causes.push(Cause::required(field)),
        None | Some("") => {}
        Some(p) if !p.starts_with(prefix) || p.len() == prefix.len() => {
            causes.push(Cause::invalid(
                field,
                format!(
                    "Invalid value: \"{p}\": should be a json path under {}",
                    prefix.trim_end_matches('.')
                ),
            ))
        }
        Some(_) => {}
    }
}

/// Checks that a schema is structural: a type on every node (unless the node preserves
/// unknown fields or is an int-or-string), no `$ref`, properties and additionalProperties
/// not together, a single `items` schema.
fn structural(s: &Value, at: &str, root: bool, causes: &mut Vec<Cause>) {
    let Some(node) = s.as_object() else {
        causes.push(Cause::invalid(at, "Invalid value: must be a schema object"));
        return;
    };
    let preserve = node.get("x-kubernetes-preserve-unknown-fields");
    if preserve.is_some_and(|p| p != true) {
        causes.push(Cause::invalid(
            &format!("{at}.x-kubernetes-preserve-unknown-fields"),
            "Invalid value: false: must be true or undefined",
        ));
    }
    let int_or_string = node.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    match node.get("type").and_then(Value::as_str) {
        Some(t) if SCHEMA_TYPES.contains(&t) => {}
        Some(t) => causes.push(unsupported(&format!("{at}.type"), t, &SCHEMA_TYPES)),
        None if int_or_string || preserve.is_some() => {}
        None => causes.push(Cause {
            reason: "FieldValueRequired",
            field: format!("{at}.type"),
            message: "Required value: must not be empty for specified object fields".into(),
        }),
    }
    if root && node.get("type").and_then(Value::as_str).is_some_and(|t| t != "object") {
        causes.push(Cause::invalid(
            &format!("{at}.type"),
            "Invalid value: must be object at the root",
        ));
    }
    if node.contains_key("$ref") {
        causes.push(Cause {
            reason: "FieldValueForbidden",
            field: format!("{at}.$ref"),
            message: "Forbidden: $ref is not supported".into(),
        });
    }
    let props = node.get("properties").and_then(Value::as_object);
    if props.is_some_and(|p| !p.is_empty())
        && node.get("additionalProperties").is_some_and(Value::is_object)
    {
        causes.push(Cause {
            reason: "FieldValueForbidden",
            field: format!("{at}.additionalProperties"),
            message: "Forbidden: additionalProperties and properties are mutual exclusive".into(),
        });
    }
    for (k, sub) in props.into_iter().flatten() {
        if root && k == "metadata" {
            let extra: Vec<&String> = sub["properties"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| k)
                .filter(|k| *k != "name" && *k != "generateName")
                .collect();
            if !extra.is_empty() {
                causes.push(Cause {
                    reason: "FieldValueForbidden",
                    field: format!("{at}.properties[metadata]"),
                    message: "Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified".into(),
                });
            }
        }
        structural(sub, &format!("{at}.properties[{k}]"), false, causes);
    }
    if let Some(ap) = node.get("additionalProperties").filter(|a| a.is_object()) {
        structural(ap, &format!("{at}.additionalProperties"), false, causes);
    }
    match node.get("items") {
        Some(Value::Object(_)) => structural(&node["items"], &format!("{at}.items"), false, causes),
        Some(_) => causes.push(Cause {
            reason: "FieldValueForbidden",
            field: format!("{at}.items"),
            message: "Forbidden: items must be a schema object and not an array".into(),
        }),
        None if node.get("type") == Some(&Value::String("array".into())) => causes.push(Cause {
            reason: "FieldValueRequired",
            field: format!("{at}.items"),
            message: "Required value: must be specified".into(),
        }),
        None => {}
    }
}

/// Version names in Kubernetes' priority order: GA before beta before alpha, higher numbers
/// first, then the rest alphabetically (the first is the preferred version).
pub fn version_priority(name: &str) -> (u8, i64, i64, String) {
    let parse = || -> Option<(u8, i64, i64)> {
        let rest = name.strip_prefix('v')?;
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let major: i64 = rest[..digits].parse().ok()?;
        let tail = &rest[digits..];
        if tail.is_empty() {
            return Some((0, -major, 0));
        }
        for (stage, rank) in [("beta", 1), ("alpha", 2)] {
            if let Some(n) = tail.strip_prefix(stage) {
                let minor: i64 = if n.is_empty() { 0 } else { n.parse().ok()? };
                return Some((rank, -major, -minor));
            }
        }
        None
    };
    match parse() {
        Some((r, a, b)) => (r, a, b, String::new()),
        None => (3, 0, 0, name.to_owned()),
    }
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

fn leak_list(v: &Value) -> &'static [&'static str] {
    let items: Vec<&'static str> =
        v.as_array().into_iter().flatten().filter_map(Value::as_str).map(leak).collect();
    Box::leak(items.into_boxed_slice())
}

/// The kinds an established definition serves, one per served version in priority order.
/// Their strings live for the rest of the process: the registry builds them only when a
/// definition changes.
pub fn served_kinds(crd: &Value) -> Vec<&'static ResourceKind> {
    let spec = &crd["spec"];
    let names = &spec["names"];
    let group = leak(str_of(spec, "group"));
    let kind = leak(str_of(names, "kind"));
    let plural = leak(str_of(names, "plural"));
    let singular = match str_of(names, "singular") {
        "" => leak(&str_of(names, "kind").to_lowercase()),
        s => leak(s),
    };
    let short_names = leak_list(&names["shortNames"]);
    let categories = leak_list(&names["categories"]);
    let list_kind = match str_of(names, "listKind") {
        "" => format!("{kind}List"),
        l => l.to_owned(),
    };
    let mut versions: Vec<&Value> =
        spec["versions"].as_array().into_iter().flatten().filter(|v| v["served"] == true).collect();
    versions.sort_by_key(|v| version_priority(str_of(v, "name")));
    let storage_version = spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["storage"] == true)
        .map(|v| str_of(v, "name").to_owned())
        .unwrap_or_default();
    versions
        .into_iter()
        .map(|v| {
            let mut subs = Vec::new();
            if v["subresources"].get("status").is_some() {
                subs.push(Subresource::Status);
            }
            let scale = v["subresources"].get("scale").map(|s| ScalePaths {
                spec_replicas: str_of(s, "specReplicasPath").to_owned(),
                status_replicas: str_of(s, "statusReplicasPath").to_owned(),
                label_selector: s["labelSelectorPath"].as_str().map(str::to_owned),
            });
            if scale.is_some() {
                subs.push(Subresource::Scale);
            }
            let columns = v["additionalPrinterColumns"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| PrinterColumn {
                    name: str_of(c, "name").to_owned(),
                    type_: str_of(c, "type").to_owned(),
                    format: str_of(c, "format").to_owned(),
                    description: str_of(c, "description").to_owned(),
                    priority: c["priority"].as_i64().unwrap_or(0),
                    json_path: str_of(c, "jsonPath").to_owned(),
                })
                .collect();
            let custom: &'static CustomKind = Box::leak(Box::new(CustomKind {
                definition: crd["metadata"]["name"].as_str().unwrap_or("").to_owned(),
                storage_version: storage_version.clone(),
                schema: v["schema"]["openAPIV3Schema"].clone(),
                columns,
                scale,
                list_kind: list_kind.clone(),
            }));
            let k: &'static ResourceKind = Box::leak(Box::new(ResourceKind {
                group,
                version: leak(str_of(v, "name")),
                kind,
                plural,
                singular,
                namespaced: spec["scope"] == "Namespaced",
                short_names,
                categories,
                subresources: Box::leak(subs.into_boxed_slice()),
                storage: Storage::Stored,
                schema: |_| schemars::schema::Schema::Bool(true),
                decode: |_| Ok(()),
                schema_name: String::new,
                custom: Some(custom),
            }));
            k
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn crd() -> Value {
        json!({"metadata": {"name": "crontabs.stable.example.com"}, "spec": {
        "group": "stable.example.com", "scope": "Namespaced",
        "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab", "shortNames": ["ct"]},
        "versions": [
            {"name": "v1beta1", "served": true, "storage": false, "schema": {"openAPIV3Schema": {"type": "object"}}},
            {"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object",
                "properties": {"spec": {"type": "object", "properties": {"replicas": {"type": "integer"}}}}}}},
        ]}})
    }

    #[test]
    fn a_good_definition_passes_and_serves_its_versions_in_priority_order() {
        assert_eq!(validate(&crd()), vec![]);
        let kinds = served_kinds(&crd());
        let versions: Vec<&str> = kinds.iter().map(|k| k.version).collect();
        assert_eq!(versions, ["v1", "v1beta1"]);
        assert_eq!(kinds[1].custom.unwrap().storage_version, "v1");
    }

    #[test]
    fn names_versions_and_schemas_are_checked() {
        let mut c = crd();
        c["metadata"]["name"] = json!("wrong.example.com");
        c["spec"]["versions"][0]["storage"] = json!(true);
        c["spec"]["versions"][1]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
            ["x"] = json!({});
        let fields: Vec<String> = validate(&c).into_iter().map(|c| c.field).collect();
        assert_eq!(
            fields,
            [
                "metadata.name",
                "spec.versions",
                "spec.versions[1].schema.openAPIV3Schema.properties[spec].properties[x].type"
            ]
        );
    }

    #[test]
    fn versions_sort_like_kubernetes() {
        let mut v = vec!["v1alpha1", "foo", "v2", "v1beta2", "v1", "v1beta1", "v10"];
        v.sort_by_key(|n| version_priority(n));
        assert_eq!(v, ["v10", "v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo"]);
    }
}
