//! Byte layouts of the embedded store's tables.
//!
//! `kv` values: create revision, mod revision (both little-endian i64), then the value.
//! `log` values: kind, key, the new value (or the deleted one), then the previous value if any.

use crate::store::{EventKind, KeyValue, Revision, StoreError, WatchEvent};

pub fn encode_kv(create: Revision, modified: Revision, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + value.len());
    out.extend_from_slice(&create.to_le_bytes());
    out.extend_from_slice(&modified.to_le_bytes());
    out.extend_from_slice(value);
    out
}

pub fn decode_kv(key: &str, bytes: &[u8]) -> Result<KeyValue, StoreError> {
    let mut r = Reader(bytes);
    Ok(KeyValue {
        key: key.to_owned(),
        create_revision: r.i64()?,
        mod_revision: r.i64()?,
        value: r.0.to_vec(),
    })
}

pub fn encode_event(ev: &WatchEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + ev.kv.value.len() * 2);
    out.push(match ev.kind {
        EventKind::Put => 0,
        EventKind::Delete => 1,
    });
    put_bytes(&mut out, ev.kv.key.as_bytes());
    out.extend_from_slice(&ev.kv.create_revision.to_le_bytes());
    put_bytes(&mut out, &ev.kv.value);
    if let Some(prev) = &ev.prev {
        out.push(1);
        out.extend_from_slice(&prev.create_revision.to_le_bytes());
        out.extend_from_slice(&prev.mod_revision.to_le_bytes());
        put_bytes(&mut out, &prev.value);
    } else {
        out.push(0);
    }
    out
}

pub fn decode_event(revision: Revision, bytes: &[u8]) -> Result<WatchEvent, StoreError> {
    let mut r = Reader(bytes);
    let kind = match r.u8()? {
        0 => EventKind::Put,
        1 => EventKind::Delete,
        k => return Err(corrupt(&format!("event kind {k}"))),
    };
    let key = String::from_utf8(r.bytes()?.to_vec()).map_err(|_| corrupt("key"))?;
    let create_revision = r.i64()?;
    let value = r.bytes()?.to_vec();
    let prev = if r.u8()? == 1 {
        Some(KeyValue {
            key: key.clone(),
            create_revision: r.i64()?,
            mod_revision: r.i64()?,
            value: r.bytes()?.to_vec(),
        })
    } else {
        None
    };
    Ok(WatchEvent {
        kind,
        kv: KeyValue { key, value, create_revision, mod_revision: revision },
        prev,
    })
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u64).to_le_bytes());
    out.extend_from_slice(b);
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Backend(format!("corrupt record in the embedded store: {what}"))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.0.len() < n {
            return Err(corrupt("truncated"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }
    fn i64(&mut self) -> Result<i64, StoreError> {
        let b = self.take(8)?;
        Ok(i64::from_le_bytes(b.try_into().map_err(|_| corrupt("integer"))?))
    }
    fn bytes(&mut self) -> Result<&'a [u8], StoreError> {
        let n = usize::try_from(self.i64()?).map_err(|_| corrupt("length"))?;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip() {
        let kv = |v: &[u8], m| KeyValue {
            key: "/a/b".into(),
            value: v.to_vec(),
            create_revision: 3,
            mod_revision: m,
        };
        for ev in [
            WatchEvent { kind: EventKind::Put, kv: kv(b"new", 9), prev: Some(kv(b"old", 5)) },
            WatchEvent { kind: EventKind::Delete, kv: kv(b"", 9), prev: None },
        ] {
            assert_eq!(decode_event(9, &encode_event(&ev)).unwrap(), ev);
        }
        assert!(decode_event(1, &[0, 1]).is_err());
    }
}
