//! Bad input gets the right Kubernetes Status (code and reason) and changes nothing.

mod common;

use common::{Backend, Cluster, admin, revision, settled};
use serde_json::{Value, json};

const CMS: &str = "/api/v1/namespaces/default/configmaps";
const DEPLOYS: &str = "/apis/apps/v1/namespaces/default/deployments";

/// (what, path, content type, body, expected code, expected reason)
type Case = (&'static str, String, Option<&'static str>, Vec<u8>, u16, &'static str);

fn cm(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})
}

fn status(body: &Value) -> (i64, &str) {
    assert_eq!(body["kind"], "Status", "{body}");
    (body["code"].as_i64().unwrap_or(0), body["reason"].as_str().unwrap_or(""))
}

async fn bad_requests_get_status_codes_and_change_nothing(b: Backend) {
    let c = Cluster::new(b);
    let mut conn = admin(&c).await;
    settled(&mut conn).await;
    let created = conn.send_json("POST", CMS, &cm("existing")).await.unwrap();
    assert_eq!(created.status, 201);
    let rv = created.json()["metadata"]["resourceVersion"].as_str().unwrap().to_owned();
    let before = revision(&mut conn).await;

    let huge = vec![b' '; 4 * 1024 * 1024];
    let bad_deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}});
    let cases: Vec<Case> = vec![
        ("malformed JSON", CMS.into(), Some("application/json"), b"{\"apiVersion\": \"v1\", ".to_vec(), 400, "BadRequest"),
        ("malformed YAML", CMS.into(), Some("application/yaml"), b"kind: ConfigMap\n  bad: [indent".to_vec(), 400, "BadRequest"),
        ("not an object", CMS.into(), Some("application/json"), b"[1, 2]".to_vec(), 400, "BadRequest"),
        ("unknown resource", "/apis/apps/v1/namespaces/default/widgets".into(), Some("application/json"), cm("w").to_string().into_bytes(), 404, "NotFound"),
        ("kind mismatch", CMS.into(), Some("application/json"), json!({"apiVersion": "v1", "kind": "Widget", "metadata": {"name": "x"}}).to_string().into_bytes(), 400, "BadRequest"),
        ("wrong apiVersion", DEPLOYS.into(), Some("application/json"), json!({"apiVersion": "apps/v2", "kind": "Deployment", "metadata": {"name": "x"}}).to_string().into_bytes(), 400, "BadRequest"),
        ("unserved version", "/apis/apps/v2/namespaces/default/deployments".into(), Some("application/json"), b"{}".to_vec(), 404, "NotFound"),
        ("duplicate create", CMS.into(), Some("application/json"), cm("existing").to_string().into_bytes(), 409, "AlreadyExists"),
        ("oversized body", CMS.into(), Some("application/json"), huge, 413, "RequestEntityTooLarge"),
        ("invalid object", DEPLOYS.into(), Some("application/json"), bad_deploy.to_string().into_bytes(), 422, "Invalid"),
        ("wrong field type", CMS.into(), Some("application/json"), json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "t"}, "data": {"k": 5}}).to_string().into_bytes(), 400, "BadRequest"),
        ("strict unknown field", format!("{CMS}?fieldValidation=Strict"), Some("application/json"), json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s"}, "colour": 1}).to_string().into_bytes(), 400, "BadRequest"),
        ("bad name", CMS.into(), Some("application/json"), cm("Not_A_Name").to_string().into_bytes(), 422, "Invalid"),
        ("missing namespace", "/api/v1/namespaces/nope/configmaps".into(), Some("application/json"), cm("x").to_string().into_bytes(), 404, "NotFound"),
        ("protobuf body", CMS.into(), Some("application/vnd.kubernetes.protobuf"), b"k8s\0junk".to_vec(), 400, "BadRequest"),
        ("unknown content type", CMS.into(), Some("text/csv"), b"a,b".to_vec(), 415, "UnsupportedMediaType"),
    ];
    for (what, path, ct, body, code, reason) in cases {
        // A refused body may close the connection (as for 413), so each case gets its own.
        let mut conn = admin(&c).await;
        let r = conn.request("POST", &path, ct, body).await.unwrap();
        let b = r.json();
        assert_eq!(r.status, code, "{what}: {b}");
        assert_eq!(status(&b), (i64::from(code), reason), "{what}");
        assert!(!b["message"].as_str().unwrap_or("").is_empty(), "{what} has a message");
    }

    // Updates and patches.
    let mut stale = cm("existing");
    stale["metadata"]["resourceVersion"] = json!("1");
    let r = conn.send_json("PUT", &format!("{CMS}/existing"), &stale).await.unwrap();
    assert_eq!((r.status, status(&r.json()).1), (409, "Conflict"));
    // A patch that names a stale resourceVersion is refused, not retried onto the fresh object.
    let r = conn
        .request(
            "PATCH",
            &format!("{CMS}/existing"),
            Some("application/merge-patch+json"),
            br#"{"metadata":{"resourceVersion":"1"},"data":{"k":"patched"}}"#.to_vec(),
        )
        .await
        .unwrap();
    assert_eq!((r.status, status(&r.json()).1), (409, "Conflict"), "stale patch: {}", r.json());
    let r = conn.send_json("PUT", &format!("{CMS}/other"), &cm("existing")).await.unwrap();
    assert_eq!(r.status, 400, "name mismatch: {}", r.json());
    let r = conn
        .request(
            "PATCH",
            &format!("{CMS}/existing"),
            Some("application/json-patch+json"),
            br#"[{"op":"test","path":"/data/k","value":"nope"}]"#.to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 422, "failed JSON patch test: {}", r.json());
    let r = conn
        .request("PATCH", &format!("{CMS}/existing"), Some("application/xml"), b"<x/>".to_vec())
        .await
        .unwrap();
    assert_eq!(r.status, 415);
    let r = conn
        .request(
            "PATCH",
            &format!("{CMS}/missing"),
            Some("application/merge-patch+json"),
            b"{}".to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404);

    // Selectors.
    for q in [
        "labelSelector=a%20in%20(",
        "labelSelector=%3Dx",
        "fieldSelector=spec.bogus%3Dx",
        "fieldSelector=nonsense",
        "limit=abc",
    ] {
        let r = conn.get(&format!("{CMS}?{q}")).await.unwrap();
        assert_eq!((r.status, status(&r.json()).1), (400, "BadRequest"), "{q}");
    }

    // Credentials.
    let config =
        orchestrator::kube::connection::ConnectionConfig::from_kubeconfig(&c.kubeconfig).unwrap();
    let mut anon = config.with_token("not-a-token").unwrap().connect().await.unwrap();
    let r = anon.get(CMS).await.unwrap();
    assert_eq!((r.status, status(&r.json()).1), (401, "Unauthorized"));

    assert_eq!(revision(&mut conn).await, before, "no bad request wrote anything");
    let still = conn.get(&format!("{CMS}/existing")).await.unwrap().json();
    assert_eq!(still["metadata"]["resourceVersion"], rv.as_str());
    assert_eq!(still["data"]["k"], "v");
}

on_both_backends_async!(bad_requests_get_status_codes_and_change_nothing);
