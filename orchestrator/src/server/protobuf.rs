//! The few Kubernetes protobuf bodies this server reads: kubectl's typed clients send
//! access reviews (`kubectl auth can-i`) as `application/vnd.kubernetes.protobuf`. The
//! envelope is the magic `k8s\0` and a `runtime.Unknown` whose `raw` holds the object.
//! Other kinds are refused with 415 so clients fall back to JSON.

use serde_json::{Map, Value, json};

use crate::api::ApiError;

pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";
const MAGIC: &[u8] = b"k8s\0";

/// One field of a message: its number and its bytes (length-delimited) or integer value.
enum Field<'a> {
    Bytes(u32, &'a [u8]),
    Int,
}

fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut out = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        out |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(out);
        }
    }
    None
}

fn fields(mut buf: &[u8]) -> Option<Vec<Field<'_>>> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let tag = varint(&mut buf)?;
        let number = u32::try_from(tag >> 3).ok()?;
        match tag & 7 {
            0 => {
                varint(&mut buf)?;
                out.push(Field::Int);
            }
            1 => buf = buf.get(8..)?,
            2 => {
                let len = usize::try_from(varint(&mut buf)?).ok()?;
                let (data, rest) = (buf.get(..len)?, buf.get(len..)?);
                buf = rest;
                out.push(Field::Bytes(number, data));
            }
            5 => buf = buf.get(4..)?,
            _ => return None,
        }
    }
    Some(out)
}

fn field(buf: &[u8], number: u32) -> Option<&[u8]> {
    fields(buf)?.into_iter().find_map(|f| match f {
        Field::Bytes(n, d) if n == number => Some(d),
        _ => None,
    })
}

/// The string fields `names[i]` (numbered i+1) of a message, as a JSON object.
fn strings(buf: &[u8], names: &[&str]) -> Option<Value> {
    let mut m = Map::new();
    for f in fields(buf)? {
        if let Field::Bytes(n, d) = f
            && let Some(name) = names.get((n as usize).wrapping_sub(1))
        {
            m.insert((*name).to_owned(), Value::String(String::from_utf8(d.to_vec()).ok()?));
        }
    }
    Some(Value::Object(m))
}

/// Decodes a protobuf request body into the JSON object it stands for.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let malformed = || ApiError::bad_request("malformed protobuf request body");
    let unknown = body.strip_prefix(MAGIC).ok_or_else(malformed)?;
    let type_meta = field(unknown, 1).ok_or_else(malformed)?;
    let tm = strings(type_meta, &["apiVersion", "kind"]).ok_or_else(malformed)?;
    let raw = field(unknown, 2).unwrap_or_default();
    let kind = tm["kind"].as_str().unwrap_or("");
    let spec_bytes = field(raw, 2).unwrap_or_default();
    let spec = match kind {
        "SelfSubjectAccessReview" => {
            let mut spec = json!({});
            if let Some(ra) = field(spec_bytes, 1) {
                spec["resourceAttributes"] = strings(
                    ra,
                    &["namespace", "verb", "group", "version", "resource", "subresource", "name"],
                )
                .ok_or_else(malformed)?;
            }
            if let Some(nra) = field(spec_bytes, 2) {
                spec["nonResourceAttributes"] =
                    strings(nra, &["path", "verb"]).ok_or_else(malformed)?;
            }
            spec
        }
        "SelfSubjectRulesReview" => strings(spec_bytes, &["namespace"]).ok_or_else(malformed)?,
        other => {
            return Err(ApiError::unsupported_media_type(&format!(
                "{CONTENT_TYPE} (only access reviews are read as protobuf, not {other}; send JSON)"
            )));
        }
    };
    Ok(json!({ "apiVersion": tm["apiVersion"], "kind": kind, "metadata": {}, "spec": spec }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(fields: &[(u32, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (n, d) in fields {
            out.push(((n << 3) | 2) as u8);
            out.push(d.len() as u8);
            out.extend_from_slice(d);
        }
        out
    }

    #[test]
    fn access_review() {
        let ra = msg(&[(1, b"default"), (2, b"list"), (5, b"pods")]);
        let spec = msg(&[(1, &ra)]);
        let raw = msg(&[(2, &spec)]);
        let tm = msg(&[(1, b"authorization.k8s.io/v1"), (2, b"SelfSubjectAccessReview")]);
        let mut body = MAGIC.to_vec();
        body.extend(msg(&[(1, &tm), (2, &raw)]));
        let v = decode(&body).unwrap();
        assert_eq!(
            v["spec"]["resourceAttributes"],
            json!({"namespace": "default", "verb": "list", "resource": "pods"})
        );
        assert_eq!(decode(b"k8s\0\x0a\x05").unwrap_err().code, 400);
        assert_eq!(decode(b"nope").unwrap_err().code, 400);
    }
}
