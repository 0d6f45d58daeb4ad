//! CustomResourceDefinitions with the real kubectl (and the official Python client's
//! CustomObjectsApi), on both stores: a definition with a structural schema, two versions,
//! status and scale subresources, printer columns, a short name and a category; its objects
//! validated, pruned and defaulted, served under both versions, watched, scaled, and removed
//! with the definition.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use common::{Backend, Cluster, eventually, python};

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
spec:
  group: stable.example.com
  scope: Namespaced
  names:
    plural: crontabs
    singular: crontab
    kind: CronTab
    shortNames: [ct]
    categories: [all]
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [cronSpec, image]
            properties:
              cronSpec:
                type: string
                description: The schedule, in cron format.
                pattern: '^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$'
              image:
                type: string
                minLength: 1
              replicas:
                type: integer
                minimum: 1
                maximum: 10
                default: 1
              size:
                type: string
                enum: [small, large]
                default: small
              extra:
                type: object
                x-kubernetes-preserve-unknown-fields: true
          status:
            type: object
            properties:
              replicas: {type: integer}
              selector: {type: string}
              phase: {type: string}
    subresources:
      status: {}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
        labelSelectorPath: .status.selector
    additionalPrinterColumns:
    - name: Spec
      type: string
      jsonPath: .spec.cronSpec
    - name: Replicas
      type: integer
      jsonPath: .spec.replicas
    - name: Age
      type: date
      jsonPath: .metadata.creationTimestamp
  - name: v1beta1
    served: true
    storage: false
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#;

const GOOD: &str = "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata: {name: nightly}\nspec:\n  cronSpec: \"*/5 * * * *\"\n  image: backup:1\n";

fn established(c: &Cluster) {
    c.ok(&["apply", "-f", c.write("crd.yaml", CRD).to_str().unwrap()]);
    c.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/crontabs.stable.example.com",
        "--timeout=30s",
    ]);
}

fn definition_serves_validates_and_cleans_up(b: Backend) {
    let c = Cluster::new(b);
    established(&c);
    let crd = c.json(&["get", "crd", "crontabs.stable.example.com"]);
    assert_eq!(crd["status"]["acceptedNames"]["kind"], "CronTab");
    assert_eq!(crd["status"]["storedVersions"], serde_json::json!(["v1"]));
    let resources = c.ok(&["api-resources", "--api-group=stable.example.com"]);
    assert!(
        resources.contains("crontabs") && resources.contains("ct") && resources.contains("CronTab"),
        "{resources}"
    );

    // A valid object: created, unknown fields pruned, defaults filled in.
    let good = GOOD.replace("image: backup:1\n", "image: backup:1\n  extra: {keep: [1, 2]}\n");
    assert!(c.apply(&good, &[]).contains("crontab.stable.example.com/nightly created"));
    let o = c.json(&["get", "crontab", "nightly"]);
    assert_eq!(o["apiVersion"], "stable.example.com/v1");
    assert_eq!(
        (o["spec"]["replicas"].as_i64(), o["spec"]["size"].as_str()),
        (Some(1), Some("small"))
    );
    assert_eq!(o["spec"]["extra"]["keep"], serde_json::json!([1, 2]), "preserved");

    // Strict field validation (kubectl's default) refuses unknown fields; Warn prunes them.
    let unknown = GOOD.replace("metadata: {name: nightly}", "metadata: {name: colourful}")
        + "  colour: blue\n";
    let f = c.write("unknown.yaml", &unknown);
    let err = c.fails(&["apply", "-f", f.to_str().unwrap()]);
    assert!(err.contains("unknown field \"spec.colour\""), "{err}");
    let out = c.kubectl(&["apply", "--validate=warn", "-f", f.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field \"spec.colour\""));
    assert!(c.json(&["get", "ct", "colourful"])["spec"].get("colour").is_none());

    // Bad objects: 422 naming the field, nothing stored.
    for (bad, field, words) in [
        (
            GOOD.replace("metadata: {name: nightly}", "metadata: {name: b1}") + "  replicas: two\n",
            "spec.replicas",
            "must be of type integer",
        ),
        (
            GOOD.replace("metadata: {name: nightly}", "metadata: {name: b2}")
                .replace("  image: backup:1\n", ""),
            "spec.image",
            "Required value",
        ),
        (
            GOOD.replace("metadata: {name: nightly}", "metadata: {name: b3}") + "  size: huge\n",
            "spec.size",
            "Unsupported value: \"huge\"",
        ),
        (
            GOOD.replace("metadata: {name: nightly}", "metadata: {name: b4}") + "  replicas: 11\n",
            "spec.replicas",
            "less than or equal to 10",
        ),
        (
            GOOD.replace("metadata: {name: nightly}", "metadata: {name: b5}")
                .replace("*/5 * * * *", "often"),
            "spec.cronSpec",
            "should match",
        ),
    ] {
        let f = c.write("bad.yaml", &bad);
        let err = c.fails(&["apply", "--validate=false", "-f", f.to_str().unwrap()]);
        assert!(err.contains("is invalid") && err.contains(field) && err.contains(words), "{err}");
    }
    for n in ["b1", "b2", "b3", "b4", "b5"] {
        assert!(c.fails(&["get", "crontab", n]).contains("NotFound"));
    }
    // Strategic merge patches are not for custom resources.
    let err = c.fails(&[
        "patch",
        "ct",
        "nightly",
        "--type=strategic",
        "-p",
        r#"{"spec":{"replicas":2}}"#,
    ]);
    assert!(
        err.contains("UnsupportedMediaType")
            || err.contains("415")
            || err.contains("unknown format"),
        "{err}"
    );
    c.ok(&["patch", "ct", "nightly", "--type=merge", "-p", r#"{"spec":{"replicas":2}}"#]);
    c.ok(&[
        "patch",
        "ct",
        "nightly",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/image","value":"backup:2"}]"#,
    ]);
    let err =
        c.fails(&["patch", "ct", "nightly", "--type=merge", "-p", r#"{"spec":{"replicas":0}}"#]);
    assert!(err.contains("spec.replicas"), "{err}");

    // Printer columns, short name, category, selectors.
    let table = c.ok(&["get", "crontabs"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "SPEC", "REPLICAS", "AGE"], "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("nightly") && l.contains("*/5 * * * *") && l.contains(" 2 ")),
        "{table}"
    );
    assert!(c.ok(&["get", "all"]).contains("crontab.stable.example.com/nightly"));
    c.ok(&["label", "ct", "nightly", "tier=batch"]);
    assert_eq!(
        c.ok(&["get", "ct", "-l", "tier=batch", "-o", "name"]).trim(),
        "crontab.stable.example.com/nightly"
    );
    assert_eq!(
        c.ok(&["get", "ct", "--field-selector", "metadata.name=colourful", "-o", "name"]).trim(),
        "crontab.stable.example.com/colourful"
    );

    // OpenAPI: explain, and client-side validation sees the schema.
    let explain = c.ok(&["explain", "crontab.spec"]);
    assert!(
        explain.contains("cronSpec") && explain.contains("The schedule, in cron format."),
        "{explain}"
    );
    let explain = c.ok(&["explain", "crontab.spec", "--output=plaintext-openapiv2"]);
    assert!(explain.contains("The schedule, in cron format."), "{explain}");

    // The other served version: the same object, only apiVersion differs.
    let beta = c.json(&["get", "crontabs.v1beta1.stable.example.com", "nightly"]);
    assert_eq!(beta["apiVersion"], "stable.example.com/v1beta1");
    assert_eq!(beta["spec"]["image"], "backup:2");
    let raw =
        c.ok(&["get", "--raw", "/apis/stable.example.com/v1beta1/namespaces/default/crontabs"]);
    assert!(raw.contains("\"apiVersion\":\"stable.example.com/v1beta1\""), "{raw}");

    // A watch sees scale and status changes.
    let mut watcher = c
        .kubectl_cmd()
        .args([
            "get",
            "ct",
            "nightly",
            "-w",
            "-o",
            "jsonpath={.spec.replicas}/{.status.phase}{\"\\n\"}",
            "--request-timeout=30s",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watcher.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "2/");
    assert!(c.ok(&["scale", "crontab", "nightly", "--replicas=4"]).contains("scaled"));
    assert_eq!(lines.next().unwrap().unwrap(), "4/");
    let scale = c.ok(&[
        "get",
        "--raw",
        "/apis/stable.example.com/v1/namespaces/default/crontabs/nightly/scale",
    ]);
    assert!(scale.contains("\"kind\":\"Scale\"") && scale.contains("\"replicas\":4"), "{scale}");
    // Status only through the status subresource.
    c.ok(&[
        "patch",
        "ct",
        "nightly",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Running","replicas":4,"selector":"app=cron"}}"#,
    ]);
    assert_eq!(lines.next().unwrap().unwrap(), "4/Running");
    c.ok(&["patch", "ct", "nightly", "--type=merge", "-p", r#"{"status":{"phase":"Ignored"}}"#]);
    assert_eq!(c.json(&["get", "ct", "nightly"])["status"]["phase"], "Running");
    let scale = c.ok(&[
        "get",
        "--raw",
        "/apis/stable.example.com/v1/namespaces/default/crontabs/nightly/scale",
    ]);
    assert!(scale.contains("\"selector\":\"app=cron\""), "{scale}");
    let _ = watcher.kill();
    let _ = watcher.wait();

    // Owned custom objects are collected with their owner.
    let owner = c.json(&["get", "ct", "nightly"]);
    let uid = owner["metadata"]["uid"].as_str().unwrap();
    c.apply(&format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: owned\n  ownerReferences:\n  - {{apiVersion: stable.example.com/v1, kind: CronTab, name: nightly, uid: {uid}}}\n"), &[]);
    c.ok(&["delete", "ct", "nightly"]);
    assert!(eventually(Duration::from_secs(20), || !c
        .kubectl(&["get", "cm", "owned"])
        .status
        .success()));

    // Namespace deletion removes namespaced custom objects.
    c.ok(&["create", "namespace", "team"]);
    c.apply(
        &GOOD.replace("metadata: {name: nightly}", "metadata: {name: hourly, namespace: team}"),
        &[],
    );
    c.ok(&["delete", "namespace", "team", "--timeout=30s"]);
    assert!(
        c.ok(&["get", "ct", "-A", "-o", "name"]).trim() == "crontab.stable.example.com/colourful"
    );

    // Server-side apply owns and merges fields of custom objects too.
    let applied = GOOD.replace("metadata: {name: nightly}", "metadata: {name: ssa}");
    let f = c.write("ssa.yaml", &applied);
    c.ok(&["apply", "--server-side", "-f", f.to_str().unwrap()]);
    c.write("ssa.yaml", &applied.replace("backup:1", "backup:3"));
    c.ok(&["apply", "--server-side", "-f", f.to_str().unwrap()]);
    let o = c.json(&["get", "ct", "ssa", "--show-managed-fields"]);
    assert_eq!(
        (o["spec"]["image"].as_str(), o["spec"]["replicas"].as_i64()),
        (Some("backup:3"), Some(1))
    );
    assert!(
        o["metadata"]["managedFields"]
            .as_array()
            .is_some_and(|m| m.iter().any(|e| e["operation"] == "Apply"))
    );

    let crds = c.ok(&["get", "crds"]);
    let header: Vec<&str> = crds.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "CREATED", "AT"], "{crds}");

    // Deleting the definition deletes its objects (while one is held by its own finalizer,
    // the definition is Terminating and refuses new objects), then stops serving them.
    c.ok(&[
        "patch",
        "ct",
        "ssa",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
    ]);
    c.ok(&["delete", "crd", "crontabs.stable.example.com", "--wait=false"]);
    assert!(eventually(Duration::from_secs(20), || {
        c.json(&["get", "crd", "crontabs.stable.example.com"])["status"]["conditions"]
            .as_array()
            .is_some_and(|cs| {
                cs.iter().any(|x| x["type"] == "Terminating" && x["status"] == "True")
            })
            && c.json(&["get", "ct", "ssa"])["metadata"]["deletionTimestamp"].is_string()
    }));
    let f =
        c.write("late.yaml", &GOOD.replace("metadata: {name: nightly}", "metadata: {name: late}"));
    let err = c.fails(&["create", "-f", f.to_str().unwrap()]);
    assert!(
        err.contains("create not allowed while custom resource definition is terminating"),
        "{err}"
    );
    c.ok(&[
        "patch",
        "ct",
        "ssa",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    assert!(eventually(Duration::from_secs(20), || {
        !c.kubectl(&["get", "crd", "crontabs.stable.example.com"]).status.success()
    }));
    assert!(eventually(Duration::from_secs(20), || {
        !c.kubectl(&["get", "--raw", "/apis/stable.example.com/v1/namespaces/default/crontabs"])
            .status
            .success()
    }));
    let left = c.ok(&["get", "--raw", "/apis"]);
    assert!(!left.contains("stable.example.com"), "{left}");
    // Created again, the old objects are gone.
    established(&c);
    assert!(eventually(Duration::from_secs(10), || c.kubectl(&["get", "ct"]).status.success()));
    assert_eq!(c.ok(&["get", "ct", "-A", "-o", "name"]).trim(), "");
}

fn definitions_are_validated(b: Backend) {
    let c = Cluster::new(b);
    for (bad, words) in [
        (
            CRD.replace("  name: crontabs.stable.example.com", "  name: wrong.stable.example.com"),
            "metadata.name",
        ),
        (
            CRD.replace("    storage: false", "    storage: true"),
            "exactly one version marked as storage version",
        ),
        (CRD.replace("    served: true\n", "    served: false\n"), "at least one served version"),
        (
            CRD.replace(
                "              replicas: {type: integer}",
                "              replicas: {minimum: 1}",
            ),
            "properties[replicas].type",
        ),
        (CRD.replace("scope: Namespaced", "scope: Everywhere"), "spec.scope"),
    ] {
        let f = c.write("bad-crd.yaml", &bad);
        let err = c.fails(&["apply", "--validate=false", "-f", f.to_str().unwrap()]);
        assert!(err.contains("is invalid") && err.contains(words), "{words}: {err}");
    }
    // Unknown schema keywords are unknown fields.
    let f = c.write(
        "kw.yaml",
        &CRD.replace(
            "                minLength: 1",
            "                minLength: 1\n                colour: red",
        ),
    );
    let err = c.fails(&["apply", "-f", f.to_str().unwrap()]);
    assert!(err.contains("unknown field") && err.contains("colour"), "{err}");
    assert!(c.ok(&["get", "crd", "-o", "name"]).trim().is_empty());
}

/// The official Python client's CustomObjectsApi creates, lists, patches and deletes.
fn python_custom_objects_api(b: Backend) {
    let c = Cluster::new(b);
    established(&c);
    let out = python::run("custom_objects.py", &c.kubeconfig, Duration::from_secs(120));
    assert!(out.contains("custom objects ok"), "{out}");
}

on_both_backends!(
    definition_serves_validates_and_cleans_up,
    definitions_are_validated,
    python_custom_objects_api
);
