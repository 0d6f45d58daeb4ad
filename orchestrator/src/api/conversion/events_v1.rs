//! events.k8s.io/v1 Event ↔ core/v1 Event (stored): the same events under newer names
//! (`regarding`, `note`, `reportingController`, the `deprecated*` fields).

use serde_json::{Value, json};

use super::carry;

/// (events.k8s.io/v1 name, core/v1 name) of every field that differs or carries over.
const FIELDS: [(&str, &str); 14] = [
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("reportingInstance", "reportingInstance"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
    ("eventTime", "eventTime"),
    ("series", "series"),
    ("action", "action"),
    ("reason", "reason"),
    ("related", "related"),
    ("type", "type"),
];

pub fn to_core(ev: Value) -> Value {
    let mut out = json!({"apiVersion": "v1", "kind": "Event", "metadata": ev["metadata"].clone()});
    for (new, old) in FIELDS {
        carry(&ev, new, &mut out, old);
    }
    if out.get("involvedObject").is_none() {
        out["involvedObject"] = json!({});
    }
    out
}

pub fn from_core(ev: Value) -> Value {
    let mut out = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": ev["metadata"].clone(), "eventTime": null});
    for (new, old) in FIELDS {
        carry(&ev, old, &mut out, new);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_events_read_as_events_k8s_io() {
        let core = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
            "involvedObject": {"kind": "Pod", "name": "p"}, "message": "Started", "reason": "Started",
            "source": {"component": "kubelet"}, "count": 2, "type": "Normal",
            "reportingComponent": "kubelet", "eventTime": null});
        let new = from_core(core.clone());
        assert_eq!(new["regarding"]["name"], "p");
        assert_eq!(new["note"], "Started");
        assert_eq!(new["deprecatedCount"], 2);
        assert_eq!(new["reportingController"], "kubelet");
        let back = to_core(new);
        assert_eq!(back["message"], core["message"]);
        assert_eq!(back["involvedObject"], core["involvedObject"]);
        assert_eq!(back["source"], core["source"]);
    }
}
