//! Kubernetes protobuf request bodies. kubectl's typed clients (`kubectl create ...`,
//! `kubectl debug`, `kubectl drain`, `kubectl auth can-i`) and client-go programs send
//! `application/vnd.kubernetes.protobuf`: the magic `k8s\0` and a `runtime.Unknown` whose
//! `raw` holds the object. The kinds in [`schema`] are decoded into the JSON object they
//! stand for; anything else (or a field not in the table) is refused with 415 rather than
//! silently dropped.

mod schema;

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::api::ApiError;
use schema::{Msg, Ty};

pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";
const MAGIC: &[u8] = b"k8s\0";

/// One field on the wire.
enum Wire<'a> {
    Varint(u32, u64),
    Bytes(u32, &'a [u8]),
    /// A 64-bit fixed-width field (wire type 1: doubles).
    Fixed64(u32, u64),
    /// A 32-bit one (wire type 5: floats, which no table holds).
    Fixed32(u32, u32),
}

impl Wire<'_> {
    fn number(&self) -> u32 {
        match self {
            Self::Varint(n, _) | Self::Bytes(n, _) | Self::Fixed64(n, _) | Self::Fixed32(n, _) => {
                *n
            }
        }
    }
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

fn fields(mut buf: &[u8]) -> Option<Vec<Wire<'_>>> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let tag = varint(&mut buf)?;
        let number = u32::try_from(tag >> 3).ok()?;
        match tag & 7 {
            0 => out.push(Wire::Varint(number, varint(&mut buf)?)),
            1 => {
                let (bits, rest) = buf.split_first_chunk::<8>()?;
                buf = rest;
                out.push(Wire::Fixed64(number, u64::from_le_bytes(*bits)));
            }
            2 => {
                let len = usize::try_from(varint(&mut buf)?).ok()?;
                let (data, rest) = (buf.get(..len)?, buf.get(len..)?);
                buf = rest;
                out.push(Wire::Bytes(number, data));
            }
            5 => {
                let (bits, rest) = buf.split_first_chunk::<4>()?;
                buf = rest;
                out.push(Wire::Fixed32(number, u32::from_le_bytes(*bits)));
            }
            _ => return None,
        }
    }
    Some(out)
}

#[derive(Debug)]
enum DecodeError {
    Malformed(String),
    Unsupported(String),
}

fn malformed(what: &str) -> DecodeError {
    DecodeError::Malformed(what.to_owned())
}

fn bytes_of<'a>(w: &Wire<'a>, what: &str) -> Result<&'a [u8], DecodeError> {
    match w {
        Wire::Bytes(_, d) => Ok(d),
        _ => Err(malformed(what)),
    }
}

fn utf8(d: &[u8], what: &str) -> Result<String, DecodeError> {
    String::from_utf8(d.to_vec()).map_err(|_| malformed(what))
}

/// The bytes of field `n` of a small message (e.g. RawExtension's only field).
fn bytes_field<'a>(d: &'a [u8], n: u32, what: &str) -> Result<Option<&'a [u8]>, DecodeError> {
    for w in fields(d).ok_or_else(|| malformed(what))? {
        if let Wire::Bytes(num, s) = w
            && num == n
        {
            return Ok(Some(s));
        }
    }
    Ok(None)
}

/// A string field `n` of a small message (e.g. Quantity's only field).
fn string_field(d: &[u8], n: u32, what: &str) -> Result<Option<String>, DecodeError> {
    bytes_field(d, n, what)?.map(|s| utf8(s, what)).transpose()
}

fn value(ty: Ty, w: &Wire<'_>, at: &str, depth: usize) -> Result<Value, DecodeError> {
    Ok(match ty {
        Ty::Str => Value::String(utf8(bytes_of(w, at)?, at)?),
        Ty::Bytes => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes_of(w, at)?))
        }
        Ty::Int => match w {
            Wire::Varint(_, v) => json!(*v as i64),
            _ => return Err(malformed(at)),
        },
        Ty::Bool => match w {
            Wire::Varint(_, v) => Value::Bool(*v != 0),
            _ => return Err(malformed(at)),
        },
        Ty::Double => match w {
            Wire::Fixed64(_, bits) => number(f64::from_bits(*bits)).ok_or_else(|| malformed(at))?,
            _ => return Err(malformed(at)),
        },
        Ty::Msg(m) => Value::Object(message(bytes_of(w, at)?, m, depth)?),
        Ty::Either(m) => {
            let obj = message(bytes_of(w, at)?, m, depth)?;
            m.fields.iter().find_map(|f| obj.get(f.json).cloned()).unwrap_or(Value::Null)
        }
        Ty::Quantity => Value::String(string_field(bytes_of(w, at)?, 1, at)?.unwrap_or_default()),
        Ty::Time | Ty::MicroTime => {
            let (mut secs, mut nanos) = (0i64, 0u32);
            for f in fields(bytes_of(w, at)?).ok_or_else(|| malformed(at))? {
                match f {
                    Wire::Varint(1, v) => secs = v as i64,
                    Wire::Varint(2, v) => nanos = v as u32,
                    _ => {}
                }
            }
            let t = chrono::DateTime::from_timestamp(secs, nanos).ok_or_else(|| malformed(at))?;
            let precision = match ty {
                Ty::MicroTime => chrono::SecondsFormat::Micros,
                _ => chrono::SecondsFormat::Secs,
            };
            Value::String(t.to_rfc3339_opts(precision, true))
        }
        Ty::Raw => {
            let raw = match bytes_field(bytes_of(w, at)?, 1, at)? {
                Some(raw) if !raw.is_empty() => raw,
                _ => return Ok(Value::Null),
            };
            serde_json::from_slice(raw).map_err(|_| malformed(at))?
        }
        Ty::IntOrString => {
            let (mut is_str, mut int, mut s) = (false, 0i64, String::new());
            for f in fields(bytes_of(w, at)?).ok_or_else(|| malformed(at))? {
                match f {
                    Wire::Varint(1, v) => is_str = v == 1,
                    Wire::Varint(2, v) => int = v as i64,
                    Wire::Bytes(3, d) => s = utf8(d, at)?,
                    _ => {}
                }
            }
            if is_str { Value::String(s) } else { json!(int) }
        }
        Ty::StrList => {
            let mut items = Vec::new();
            for f in fields(bytes_of(w, at)?).ok_or_else(|| malformed(at))? {
                match f {
                    Wire::Bytes(1, d) => items.push(Value::String(utf8(d, at)?)),
                    _ => return Err(malformed(at)),
                }
            }
            Value::Array(items)
        }
        Ty::Map(_) | Ty::Inline(_) | Ty::ServerOwned => return Err(malformed(at)),
    })
}

/// What a map entry without a value holds: the value type's zero.
fn zero(ty: Ty) -> Value {
    match ty {
        Ty::Int | Ty::Double => json!(0),
        Ty::Bool => Value::Bool(false),
        Ty::Msg(_) | Ty::Inline(_) | Ty::Map(_) => Value::Object(Map::new()),
        Ty::StrList => Value::Array(Vec::new()),
        Ty::Time | Ty::MicroTime | Ty::Raw | Ty::Either(_) => Value::Null,
        Ty::Quantity => Value::String("0".into()),
        Ty::Str | Ty::Bytes | Ty::IntOrString | Ty::ServerOwned => Value::String(String::new()),
    }
}

/// One map entry (key = 1, value = 2).
fn map_entry(ty: Ty, d: &[u8], at: &str, depth: usize) -> Result<(String, Value), DecodeError> {
    let mut key = String::new();
    let mut val = zero(ty);
    for w in fields(d).ok_or_else(|| malformed(at))? {
        match (w.number(), &w) {
            (1, Wire::Bytes(_, k)) => key = utf8(k, at)?,
            (2, _) => val = value(ty, &w, at, depth)?,
            _ => return Err(malformed(at)),
        }
    }
    Ok((key, val))
}

/// The elements of a packed repeated varint field (protobuf's encoding for repeated
/// scalars in proto3; Go's proto2 encoder writes one field per element, but a decoder must
/// take both).
fn packed(ty: Ty, mut d: &[u8], at: &str) -> Result<Vec<Value>, DecodeError> {
    let mut out = Vec::new();
    while !d.is_empty() {
        let v = varint(&mut d).ok_or_else(|| malformed(at))?;
        out.push(value(ty, &Wire::Varint(0, v), at, 0)?);
    }
    Ok(out)
}

/// A double as JSON writes it: integers without a fraction, as Go does; NaN and the
/// infinities have no JSON form.
fn number(v: f64) -> Option<Value> {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53: past it, not every integer is exact
    if v.fract() == 0.0 && v.abs() < EXACT {
        return Some(json!(v as i64));
    }
    serde_json::Number::from_f64(v).map(Value::Number)
}

/// Whether a quantity is its type's zero ("0", or no string at all).
fn zero_quantity(d: &[u8]) -> bool {
    string_field(d, 1, "Quantity").is_ok_and(|s| s.is_none_or(|s| s.is_empty() || s == "0"))
}

/// How deep [`is_zero`] looks into nested messages: Go's unset structs nest a few levels,
/// and a body of a million nested fields must not take the stack with it.
const ZERO_DEPTH: usize = 32;

/// Whether a field carries only zero values: Go's encoder writes unset non-pointer fields
/// (empty strings, false, 0, empty structs) that JSON would omit.
fn is_zero(w: &Wire<'_>) -> bool {
    zero_within(w, ZERO_DEPTH)
}

fn zero_within(w: &Wire<'_>, depth: usize) -> bool {
    match w {
        Wire::Varint(_, v) => *v == 0,
        Wire::Fixed64(_, v) => *v == 0,
        Wire::Fixed32(_, v) => *v == 0,
        Wire::Bytes(_, d) => {
            d.is_empty()
                || (depth > 0
                    && fields(d).is_some_and(|fs| fs.iter().all(|f| zero_within(f, depth - 1))))
        }
    }
}

/// How many messages deep a body may nest (a custom resource's schema nests itself).
const MAX_DEPTH: usize = 200;

fn message(buf: &[u8], msg: &Msg, depth: usize) -> Result<Map<String, Value>, DecodeError> {
    let depth = depth.checked_sub(1).ok_or_else(|| malformed("nested too deep"))?;
    let mut out = Map::new();
    for w in fields(buf).ok_or_else(|| malformed(msg.name))? {
        let n = w.number();
        let Some(f) = msg.fields.iter().find(|f| f.num == n) else {
            if is_zero(&w) {
                continue;
            }
            return Err(DecodeError::Unsupported(format!(
                "field {n} of {} is not read from protobuf here",
                msg.name
            )));
        };
        let at = format!("{}.{}", msg.name, f.json);
        // Unset strings and times arrive as empty values; JSON leaves them out.
        let empty = match (&w, f.ty) {
            (Wire::Bytes(_, d), Ty::Str) => d.is_empty(),
            (_, Ty::Time | Ty::MicroTime | Ty::Raw) => is_zero(&w),
            (Wire::Varint(_, 0), _) => f.omitempty,
            (Wire::Bytes(_, d), Ty::Quantity) => f.omitempty && zero_quantity(d),
            _ => false,
        };
        if (empty && !f.repeated) || matches!(f.ty, Ty::ServerOwned) {
            continue;
        }
        match f.ty {
            Ty::Map(ty) => {
                let (k, v) = map_entry(*ty, bytes_of(&w, &at)?, &at, depth)?;
                let slot = out.entry(f.json).or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(m) = slot {
                    m.insert(k, v);
                }
            }
            Ty::Inline(m) => out.extend(message(bytes_of(&w, &at)?, m, depth)?),
            ty if f.repeated => {
                let vs = match (&w, ty) {
                    (Wire::Bytes(_, d), Ty::Int | Ty::Bool) => packed(ty, d, &at)?,
                    _ => vec![value(ty, &w, &at, depth)?],
                };
                let slot = out.entry(f.json).or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(a) = slot {
                    a.extend(vs);
                }
            }
            ty => {
                out.insert(f.json.to_owned(), value(ty, &w, &at, depth)?);
            }
        }
    }
    Ok(out)
}

/// Decodes a protobuf request body into the JSON object it stands for.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let bad =
        |what: &str| ApiError::bad_request(format!("malformed protobuf request body ({what})"));
    let unknown = body.strip_prefix(MAGIC).ok_or_else(|| bad("no k8s envelope"))?;
    let envelope = fields(unknown).ok_or_else(|| bad("envelope"))?;
    let part = |n: u32| {
        envelope.iter().find_map(|w| match w {
            Wire::Bytes(num, d) if *num == n => Some(*d),
            _ => None,
        })
    };
    let type_meta = part(1).ok_or_else(|| bad("no type"))?;
    let api_version =
        string_field(type_meta, 1, "TypeMeta").map_err(|_| bad("TypeMeta"))?.unwrap_or_default();
    let kind =
        string_field(type_meta, 2, "TypeMeta").map_err(|_| bad("TypeMeta"))?.unwrap_or_default();
    if part(3).is_some_and(|e| !e.is_empty()) {
        return Err(ApiError::unsupported_media_type(&format!(
            "{CONTENT_TYPE} with a content encoding"
        )));
    }
    let msg = schema::message_of(&api_version, &kind).ok_or_else(|| {
        ApiError::unsupported_media_type(&format!("{CONTENT_TYPE} for {kind} (send JSON)"))
    })?;
    let mut obj = message(part(2).unwrap_or_default(), msg, MAX_DEPTH).map_err(|e| match e {
        DecodeError::Malformed(w) => bad(&w),
        DecodeError::Unsupported(w) => {
            ApiError::unsupported_media_type(&format!("{CONTENT_TYPE}: {w}; send JSON"))
        }
    })?;
    obj.insert("apiVersion".into(), Value::String(api_version));
    obj.insert("kind".into(), Value::String(kind));
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// Length-delimited fields `(number, bytes)`.
    fn msg(fields: &[(u32, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (n, d) in fields {
            encode_varint(u64::from(n << 3 | 2), &mut out);
            encode_varint(d.len() as u64, &mut out);
            out.extend_from_slice(d);
        }
        out
    }

    fn envelope(api_version: &[u8], kind: &[u8], raw: &[u8]) -> Vec<u8> {
        let tm = msg(&[(1, api_version), (2, kind)]);
        let mut body = MAGIC.to_vec();
        body.extend(msg(&[(1, &tm), (2, raw)]));
        body
    }

    #[test]
    fn access_review() {
        let ra = msg(&[(1, b"default"), (2, b"list"), (5, b"pods")]);
        let spec = msg(&[(1, &ra)]);
        let v = decode(&envelope(
            b"authorization.k8s.io/v1",
            b"SelfSubjectAccessReview",
            &msg(&[(2, &spec)]),
        ))
        .unwrap();
        assert_eq!(
            v["spec"]["resourceAttributes"],
            json!({"namespace": "default", "verb": "list", "resource": "pods"})
        );
        assert_eq!(decode(b"k8s\0\x0a\x05").unwrap_err().code, 400);
        assert_eq!(decode(b"nope").unwrap_err().code, 400);
    }

    #[test]
    fn drains_evictions_keep_a_zero_grace_period() {
        let meta = msg(&[(1, b"web-1"), (3, b"default")]);
        // gracePeriodSeconds = 0 (a varint field) and dryRun = ["All"].
        let mut opts = vec![1 << 3, 0];
        opts.extend(msg(&[(5, b"All")]));
        let v =
            decode(&envelope(b"policy/v1", b"Eviction", &msg(&[(1, &meta), (2, &opts)]))).unwrap();
        assert_eq!(v["metadata"], json!({"name": "web-1", "namespace": "default"}));
        assert_eq!(v["deleteOptions"], json!({"gracePeriodSeconds": 0, "dryRun": ["All"]}));
    }

    /// A varint field `n` holding `v`.
    fn var(n: u32, v: i64) -> Vec<u8> {
        let mut out = Vec::new();
        encode_varint(u64::from(n << 3), &mut out);
        encode_varint(v as u64, &mut out);
        out
    }

    fn pod(spec: &[u8]) -> Value {
        decode(&envelope(b"v1", b"Pod", &msg(&[(1, &msg(&[(1, b"p")])), (2, spec)]))).unwrap()
    }

    #[test]
    fn inline_messages_merge_into_their_parent() {
        // Volume { name, volumeSource { hostPath { path } } }: JSON has no volumeSource level.
        let source = msg(&[(1, &msg(&[(1, b"/")]))]);
        let volume = msg(&[(1, b"root"), (2, &source)]);
        // Probe { handler { exec { command } }, periodSeconds = 3, initialDelaySeconds = 0 }.
        let exec = msg(&[(1, b"true")]);
        let mut probe = msg(&[(1, &msg(&[(1, &exec)]))]);
        probe.extend(var(4, 3));
        probe.extend(var(2, 0));
        let container = msg(&[(1, b"c"), (2, b"busybox"), (10, &probe)]);
        let v = pod(&msg(&[(1, &volume), (2, &container)]));
        assert_eq!(v["spec"]["volumes"], json!([{"name": "root", "hostPath": {"path": "/"}}]));
        assert_eq!(
            v["spec"]["containers"][0]["livenessProbe"],
            json!({"exec": {"command": ["true"]}, "periodSeconds": 3}),
            "a value int32's zero is left out"
        );
    }

    #[test]
    fn repeated_varints_packed_or_not_and_negative() {
        // PodSecurityContext.supplementalGroups: 5 and 6 packed, then 7 on its own.
        let mut ctx = msg(&[(4, &[5, 6])]);
        ctx.extend(var(4, 7));
        let mut spec = msg(&[(14, &ctx)]);
        // PodSpec.priority = -5: an int32 sent as a sign-extended ten-byte varint.
        spec.extend(var(25, -5));
        let v = pod(&spec);
        assert_eq!(v["spec"]["securityContext"]["supplementalGroups"], json!([5, 6, 7]));
        assert_eq!(v["spec"]["priority"], -5);
        let truncated = msg(&[(14, &msg(&[(4, &[0x80])]))]);
        let body = envelope(b"v1", b"Pod", &msg(&[(2, &truncated)]));
        assert_eq!(decode(&body).unwrap_err().code, 400);
    }

    #[test]
    fn maps_of_times_and_of_string_lists() {
        // PodDisruptionBudgetStatus.disruptedPods: map<string, Time>.
        let time = var(1, 1_700_000_000);
        let status = msg(&[(2, &msg(&[(1, b"web-1"), (2, &time)]))]);
        let v =
            decode(&envelope(b"policy/v1", b"PodDisruptionBudget", &msg(&[(3, &status)]))).unwrap();
        assert_eq!(v["status"]["disruptedPods"], json!({"web-1": "2023-11-14T22:13:20Z"}));
        // CertificateSigningRequestSpec.extra: map<string, ExtraValue>, a bare list in JSON.
        let extra = msg(&[(1, b"scopes"), (2, &msg(&[(1, b"a"), (1, b"b")]))]);
        let empty = msg(&[(1, b"none")]);
        let spec = msg(&[(6, &extra), (6, &empty)]);
        let v = decode(&envelope(
            b"certificates.k8s.io/v1",
            b"CertificateSigningRequest",
            &msg(&[(2, &spec)]),
        ))
        .unwrap();
        assert_eq!(v["spec"]["extra"], json!({"scopes": ["a", "b"], "none": []}));
    }

    #[test]
    fn a_zero_divisor_is_unset() {
        let env = |divisor: &[u8]| {
            let selector = msg(&[(2, b"limits.cpu"), (3, &msg(&[(1, divisor)]))]);
            let var = msg(&[(1, b"CPU"), (3, &msg(&[(2, &selector)]))]);
            let v = pod(&msg(&[(2, &msg(&[(1, b"c"), (7, &var)]))]));
            v["spec"]["containers"][0]["env"][0]["valueFrom"]["resourceFieldRef"].clone()
        };
        assert_eq!(env(b"0"), json!({"resource": "limits.cpu"}));
        assert_eq!(env(b"1m"), json!({"resource": "limits.cpu", "divisor": "1m"}));
    }

    #[test]
    fn an_unknown_nested_field_names_its_message_and_number() {
        let container = msg(&[(1, b"c"), (99, b"x")]);
        let err =
            decode(&envelope(b"v1", b"Pod", &msg(&[(2, &msg(&[(2, &container)]))]))).unwrap_err();
        assert_eq!(err.code, 415);
        assert!(err.message.contains("field 99 of Container"), "{}", err.message);
        // The same field carrying only its zero is what Go writes for an unset value.
        let container = msg(&[(1, b"c"), (99, b"")]);
        let v = pod(&msg(&[(2, &container)]));
        assert_eq!(v["spec"]["containers"], json!([{"name": "c"}]));
    }

    #[test]
    fn deeply_nested_unknown_fields_are_refused_not_recursed() {
        // Field 99 of a Container holding a million nested empty-ish messages, written
        // outside in: each level is a tag and the length of what it wraps.
        let levels = 1_000_000;
        let mut lens = vec![0u64; levels + 1];
        for i in (0..levels).rev() {
            let inner = lens[i + 1];
            let mut len = Vec::new();
            encode_varint(inner, &mut len);
            lens[i] = 1 + len.len() as u64 + inner;
        }
        let mut nested = Vec::new();
        for len in &lens[1..] {
            nested.push(1 << 3 | 2);
            encode_varint(*len, &mut nested);
        }
        let container = [msg(&[(1, b"c")]), msg(&[(99, &nested)])].concat();
        let body = envelope(b"v1", b"Pod", &msg(&[(2, &msg(&[(2, &container)]))]));
        assert_eq!(decode(&body).unwrap_err().code, 415);
    }

    #[test]
    fn pod_status_with_container_states() {
        // status { phase, containerStatuses [{ name, state { terminated { exitCode = 0,
        // signal = 0, finishedAt } }, ready = false, restartCount = 2 }] }
        let finished = var(1, 1_700_000_000);
        let mut terminated = var(1, 0);
        terminated.extend(var(2, 0));
        terminated.extend(msg(&[(6, &finished)]));
        let mut container = msg(&[(1, b"c"), (2, &msg(&[(3, &terminated)]))]);
        container.extend(var(4, 0));
        container.extend(var(5, 2));
        let status = msg(&[(1, b"Succeeded"), (8, &container)]);
        let v = decode(&envelope(b"v1", b"Pod", &msg(&[(3, &status)]))).unwrap();
        assert_eq!(
            v["status"],
            json!({"phase": "Succeeded", "containerStatuses": [{"name": "c", "ready": false,
                "restartCount": 2, "state": {"terminated": {"exitCode": 0,
                "finishedAt": "2023-11-14T22:13:20Z"}}}]}),
            "a value int32 without omitempty keeps its zero; signal's is left out"
        );
    }

    #[test]
    fn micro_times_and_raw_objects() {
        // Lease { spec { holderIdentity, renewTime (1.5 ms past a second) } }.
        let mut renew = var(1, 1_700_000_000);
        renew.extend(var(2, 1_500_000));
        let spec = msg(&[(1, b"node-a"), (4, &renew)]);
        let v =
            decode(&envelope(b"coordination.k8s.io/v1", b"Lease", &msg(&[(2, &spec)]))).unwrap();
        assert_eq!(
            v["spec"],
            json!({"holderIdentity": "node-a", "renewTime": "2023-11-14T22:13:20.001500Z"})
        );
        // ControllerRevision { data { raw: JSON }, revision = 3 }; an empty data is unset.
        let data = msg(&[(1, br#"{"spec":{"replicas":2}}"#)]);
        let mut body = msg(&[(2, &data)]);
        body.extend(var(3, 3));
        let v = decode(&envelope(b"apps/v1", b"ControllerRevision", &body)).unwrap();
        assert_eq!(
            (v["data"].clone(), v["revision"].clone()),
            (json!({"spec": {"replicas": 2}}), json!(3))
        );
        let v =
            decode(&envelope(b"apps/v1", b"ControllerRevision", &msg(&[(2, &msg(&[(1, b"")]))])))
                .unwrap();
        assert!(v.get("data").is_none(), "{v}");
        let bad = msg(&[(2, &msg(&[(1, b"{not json")]))]);
        assert_eq!(
            decode(&envelope(b"apps/v1", b"ControllerRevision", &bad)).unwrap_err().code,
            400
        );
    }

    #[test]
    fn the_two_event_messages_are_told_apart_by_version() {
        // core/v1 Event: reason = 3, message = 4; events.k8s.io/v1 Event: reason = 7, note = 10.
        let core = msg(&[(3, b"Pulled"), (4, b"image pulled")]);
        let v = decode(&envelope(b"v1", b"Event", &core)).unwrap();
        assert_eq!(
            (v["reason"].as_str(), v["message"].as_str()),
            (Some("Pulled"), Some("image pulled"))
        );
        let new = msg(&[(7, b"Pulled"), (10, b"image pulled")]);
        let v = decode(&envelope(b"events.k8s.io/v1", b"Event", &new)).unwrap();
        assert_eq!(
            (v["reason"].as_str(), v["note"].as_str()),
            (Some("Pulled"), Some("image pulled"))
        );
    }

    /// A fixed64 field `n` holding a double.
    fn double(n: u32, v: f64) -> Vec<u8> {
        let mut out = Vec::new();
        encode_varint(u64::from(n << 3 | 1), &mut out);
        out.extend(v.to_le_bytes());
        out
    }

    fn crd(schema: &[u8]) -> Result<Value, ApiError> {
        let validation = msg(&[(1, schema)]);
        let mut version = msg(&[(1, b"v1")]);
        version.extend(var(2, 1));
        version.extend(var(3, 1));
        version.extend(msg(&[(4, &validation)]));
        let spec = msg(&[(1, b"example.com"), (7, &version)]);
        let body = msg(&[(2, &spec)]);
        decode(&envelope(b"apiextensions.k8s.io/v1", b"CustomResourceDefinition", &body))
    }

    #[test]
    fn custom_resource_schemas_nest_and_hold_unions_doubles_and_raw_json() {
        // size: {type: number, maximum: 10.5, minimum: 3, enum: [1, "x"]}
        let mut size = msg(&[(5, b"number")]);
        size.extend(double(9, 10.5));
        size.extend(double(11, 3.0));
        size.extend(msg(&[(20, &msg(&[(1, b"1")])), (20, &msg(&[(1, br#""x""#)]))]));
        let mut schema = msg(&[(5, b"object"), (29, &msg(&[(1, b"size"), (2, &size)]))]);
        // items: one schema; additionalProperties: false; a dependency on a list.
        schema.extend(msg(&[(24, &msg(&[(1, &msg(&[(5, b"string")]))]))]));
        schema.extend(msg(&[(30, &var(1, 0))]));
        schema.extend(msg(&[(32, &msg(&[(1, b"a"), (2, &msg(&[(2, b"b")]))]))]));
        schema.extend(var(38, 1));
        let v = crd(&schema).unwrap();
        assert_eq!(
            v["spec"]["versions"][0]["schema"]["openAPIV3Schema"],
            json!({
                "type": "object",
                "properties": {"size": {"type": "number", "maximum": 10.5, "minimum": 3,
                    "enum": [1, "x"]}},
                "items": {"type": "string"},
                "additionalProperties": false,
                "dependencies": {"a": ["b"]},
                "x-kubernetes-preserve-unknown-fields": true,
            })
        );
        assert_eq!(v["spec"]["versions"][0]["served"], true);
        // additionalProperties given as a schema is that schema.
        let open = msg(&[(30, &msg(&[(2, &msg(&[(5, b"integer")]))]))]);
        let v = crd(&open).unwrap();
        assert_eq!(
            v["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["additionalProperties"],
            json!({"type": "integer"})
        );
        // A double that is not a number has no JSON form.
        assert_eq!(crd(&double(9, f64::NAN)).unwrap_err().code, 400);
    }

    #[test]
    fn schemas_nested_past_the_limit_are_refused() {
        let mut schema = msg(&[(5, b"string")]);
        for _ in 0..300 {
            schema = msg(&[(29, &msg(&[(1, b"p"), (2, &schema)]))]);
        }
        let err = crd(&schema).unwrap_err();
        assert_eq!(err.code, 400, "{}", err.message);
        assert!(err.message.contains("nested too deep"), "{}", err.message);
    }

    #[test]
    fn config_map_with_labels_and_data() {
        let label = msg(&[(1, b"app"), (2, b"web")]);
        let meta = msg(&[(1, b"cfg"), (11, &label)]);
        let entry = msg(&[(1, b"k"), (2, b"v")]);
        let v = decode(&envelope(b"v1", b"ConfigMap", &msg(&[(1, &meta), (2, &entry)]))).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "labels": {"app": "web"}}, "data": {"k": "v"}})
        );
        // A field outside the table is refused, not dropped.
        let odd = msg(&[(1, &meta), (9, b"x")]);
        assert_eq!(decode(&envelope(b"v1", b"ConfigMap", &odd)).unwrap_err().code, 415);
        assert_eq!(decode(&envelope(b"v1", b"Widget", &[])).unwrap_err().code, 415);
    }
}
