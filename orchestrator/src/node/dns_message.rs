//! The part of the DNS wire format (RFC 1035) that cluster DNS needs: one question in, A
//! records out. Parsing never trusts a length or a pointer: a malformed query is an error.

use std::net::Ipv4Addr;

pub const TYPE_A: u16 = 1;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_ANY: u16 = 255;
pub const CLASS_IN: u16 = 1;

/// Response codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    NoError = 0,
    FormErr = 1,
    ServFail = 2,
    NxDomain = 3,
    NotImp = 4,
    Refused = 5,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub id: u16,
    /// Recursion desired, echoed back.
    pub rd: bool,
    /// Lower-cased, without the trailing dot.
    pub name: String,
    pub qtype: u16,
    pub qclass: u16,
    /// The question section as received, echoed back.
    question: Vec<u8>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DnsError {
    #[error("message shorter than its header")]
    Short,
    #[error("not a standard query")]
    NotQuery,
    #[error("malformed question")]
    Malformed,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Parses a query with exactly one question (compression is not used in questions).
pub fn parse(msg: &[u8]) -> Result<Query, DnsError> {
    let id = u16_at(msg, 0).ok_or(DnsError::Short)?;
    let flags = u16_at(msg, 2).ok_or(DnsError::Short)?;
    let qdcount = u16_at(msg, 4).ok_or(DnsError::Short)?;
    if msg.len() < 12 {
        return Err(DnsError::Short);
    }
    // QR must be 0 (a query) and the opcode QUERY.
    if flags & 0x8000 != 0 || (flags >> 11) & 0xf != 0 || qdcount != 1 {
        return Err(DnsError::NotQuery);
    }
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = *msg.get(at).ok_or(DnsError::Malformed)? as usize;
        at += 1;
        if len == 0 {
            break;
        }
        // Pointers (0xc0) and the reserved label types have no place in a question.
        if len > 63 {
            return Err(DnsError::Malformed);
        }
        let label = msg.get(at..at + len).ok_or(DnsError::Malformed)?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        at += len;
        if at - 12 > 255 {
            return Err(DnsError::Malformed);
        }
    }
    let qtype = u16_at(msg, at).ok_or(DnsError::Malformed)?;
    let qclass = u16_at(msg, at + 2).ok_or(DnsError::Malformed)?;
    Ok(Query {
        id,
        rd: flags & 0x0100 != 0,
        name: labels.join("."),
        qtype,
        qclass,
        question: msg[12..at + 4].to_vec(),
    })
}

/// An answer to `q` with `rcode` and A records for `addrs` (the question's name, `ttl`
/// seconds), authoritative.
pub fn answer(q: &Query, rcode: Rcode, addrs: &[Ipv4Addr], ttl: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + q.question.len() + addrs.len() * 16);
    out.extend_from_slice(&q.id.to_be_bytes());
    let flags: u16 = 0x8000 | 0x0400 | if q.rd { 0x0100 } else { 0 } | rcode as u16;
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&(addrs.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&q.question);
    for a in addrs {
        // The name is a pointer to the question's (offset 12).
        out.extend_from_slice(&[0xc0, 12]);
        out.extend_from_slice(&TYPE_A.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&4u16.to_be_bytes());
        out.extend_from_slice(&a.octets());
    }
    out
}

/// A FORMERR for a message too broken to parse beyond its id (none if not even that).
pub fn format_error(msg: &[u8]) -> Option<Vec<u8>> {
    let id = u16_at(msg, 0)?;
    let mut out = id.to_be_bytes().to_vec();
    out.extend_from_slice(&(0x8000u16 | Rcode::FormErr as u16).to_be_bytes());
    out.extend_from_slice(&[0; 8]);
    Some(out)
}

/// A query for `name`, as a resolver sends it (for tests).
#[cfg(test)]
pub(crate) fn query(name: &str, qtype: u16) -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for l in name.split('.') {
        m.push(l.len() as u8);
        m.extend_from_slice(l.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&CLASS_IN.to_be_bytes());
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_answers() {
        let q = parse(&query("Web.Default.svc.cluster.local", TYPE_A)).unwrap();
        assert_eq!(q.name, "web.default.svc.cluster.local");
        assert_eq!((q.id, q.rd, q.qtype), (0x1234, true, TYPE_A));
        let a = answer(&q, Rcode::NoError, &[Ipv4Addr::new(10, 96, 0, 7)], 5);
        assert_eq!(&a[0..2], &[0x12, 0x34]);
        assert_eq!(u16::from_be_bytes([a[2], a[3]]) & 0x800f, 0x8000);
        assert_eq!(u16::from_be_bytes([a[6], a[7]]), 1);
        assert_eq!(&a[a.len() - 4..], &[10, 96, 0, 7]);
    }

    #[test]
    fn malformed_queries_are_errors() {
        let good = query("a.b", TYPE_A);
        for cut in 0..good.len() {
            assert!(parse(&good[..cut]).is_err(), "truncated at {cut}");
        }
        let mut pointer = good.clone();
        pointer[12] = 0xc0;
        assert_eq!(parse(&pointer), Err(DnsError::Malformed));
        let mut response = good.clone();
        response[2] |= 0x80;
        assert_eq!(parse(&response), Err(DnsError::NotQuery));
        let mut two = good.clone();
        two[5] = 2;
        assert_eq!(parse(&two), Err(DnsError::NotQuery));
        let long: Vec<&str> = std::iter::repeat_n("abcdefghij", 30).collect();
        assert_eq!(parse(&query(&long.join("."), TYPE_A)), Err(DnsError::Malformed));
        assert!(format_error(&[1]).is_none());
        assert_eq!(format_error(&good).unwrap()[3] & 0xf, 1);
    }
}
