//! Conversion strategy `None`: an object is stored as the storage version and served under
//! any served version with only its apiVersion changed (items of lists, rows of tables and
//! watch events alike).

use serde_json::Value;

use crate::api::resources::ResourceKind;

/// Rewrites every object of `kind`'s group in `v` from the storage apiVersion to `kind`'s.
pub fn serve_as(kind: &ResourceKind, v: &mut Value) {
    let Some(custom) = kind.custom else { return };
    if custom.storage_version == kind.version {
        return;
    }
    let from = custom.storage_api_version(kind.group);
    let to = kind.api_version();
    rewrite(v, &from, &to);
}

fn rewrite(v: &mut Value, from: &str, to: &str) {
    if v["apiVersion"] == from {
        v["apiVersion"] = Value::String(to.to_owned());
    }
    for key in ["items", "rows"] {
        if let Some(items) = v.get_mut(key).and_then(Value::as_array_mut) {
            for item in items {
                rewrite(item, from, to);
            }
        }
    }
    if let Some(o) = v.get_mut("object").filter(|o| o.is_object()) {
        rewrite(o, from, to);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lists_rows_and_events_change_version() {
        let mut v = json!({"items": [{"apiVersion": "a.b/v1"}], "rows": [{"object": {"apiVersion": "a.b/v1"}}],
            "object": {"apiVersion": "a.b/v1"}, "apiVersion": "v1"});
        rewrite(&mut v, "a.b/v1", "a.b/v2");
        assert_eq!(v["items"][0]["apiVersion"], "a.b/v2");
        assert_eq!(v["rows"][0]["object"]["apiVersion"], "a.b/v2");
        assert_eq!(v["object"]["apiVersion"], "a.b/v2");
        assert_eq!(v["apiVersion"], "v1");
    }
}
