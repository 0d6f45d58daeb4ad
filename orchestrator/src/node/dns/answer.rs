//! Answers from the cluster zone: authoritative records of its names, NXDOMAIN for names
//! that do not exist, an empty NOERROR (NODATA) for names without records of the type asked,
//! both with the zone's SOA so that resolvers cache them only briefly; queries outside the
//! zone are for the node's resolvers ([`Reply::Forward`]) or, without any, REFUSED.
//! Messages are decoded and encoded by hickory-proto.

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME, SOA, SRV};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::DOMAIN;
use super::zone::Zone;

const TTL: u32 = 5;

/// What to do with one query.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// Send these bytes back.
    Answer(Vec<u8>),
    /// A name outside the cluster zone: ask the node's resolvers.
    Forward,
}

/// How to answer one message, if it deserves an answer: a FORMERR for anything but a
/// standard query with one question (nothing when there is not even an id to answer to).
/// `limit` is the transport's message size (UDP: 512 or the client's EDNS size), past which
/// the answer is sent truncated so that the client asks again over TCP.
pub fn respond(zone: &Zone, msg: &[u8], can_forward: bool, limit: Option<usize>) -> Option<Reply> {
    let reply = match question(msg) {
        Some((request, query)) => {
            if query.query_class() == DNSClass::IN && !in_cluster(query.name()) && can_forward {
                return Some(Reply::Forward);
            }
            let size = limit.map(|l| l.max(usize::from(request.max_payload())));
            return encode(answer(zone, &request, query), size).map(Reply::Answer);
        }
        None => {
            let id = u16::from_be_bytes([*msg.first()?, *msg.get(1)?]);
            Message::error_msg(id, OpCode::Query, ResponseCode::FormErr)
        }
    };
    encode(reply, None).map(Reply::Answer)
}

/// The bytes of `reply`, truncated (TC, no records) when longer than `limit`.
fn encode(mut reply: Message, limit: Option<usize>) -> Option<Vec<u8>> {
    let bytes = reply.to_vec().map_err(|e| tracing::warn!("cluster DNS: encoding: {e}")).ok()?;
    match limit {
        Some(limit) if bytes.len() > limit => {
            reply.answers.clear();
            reply.authorities.clear();
            reply.additionals.clear();
            reply.metadata.truncation = true;
            reply.to_vec().ok()
        }
        _ => Some(bytes),
    }
}

/// The request and its single question, if `msg` is a standard query with exactly one.
fn question(msg: &[u8]) -> Option<(Message, Query)> {
    let request = Message::from_vec(msg).ok()?;
    let m = &request.metadata;
    if m.message_type != MessageType::Query || m.op_code != OpCode::Query {
        return None;
    }
    let [query] = request.queries.as_slice() else { return None };
    let query = query.clone();
    Some((request, query))
}

fn soa() -> Option<Record> {
    let apex = Name::from_ascii(format!("{DOMAIN}.")).ok()?;
    let mname = Name::from_ascii(format!("ns.dns.{DOMAIN}.")).ok()?;
    let rname = Name::from_ascii(format!("hostmaster.{DOMAIN}.")).ok()?;
    let soa = SOA::new(mname, rname, 1, 7200, 1800, 86400, TTL);
    Some(Record::from_rdata(apex, TTL, RData::SOA(soa)))
}

/// An authoritative answer to `query` about the cluster zone (REFUSED for other classes, and
/// for other names when there is nobody to forward them to).
fn answer(zone: &Zone, request: &Message, query: Query) -> Message {
    let mut reply = Message::response(request.metadata.id, OpCode::Query);
    reply.metadata.authoritative = true;
    reply.metadata.recursion_desired = request.metadata.recursion_desired;
    let name = query.name().clone();
    let qtype = query.query_type();
    reply.add_query(query);
    if reply.queries[0].query_class() != DNSClass::IN || !in_cluster(&name) {
        reply.metadata.response_code = ResponseCode::Refused;
        return reply;
    }
    let key = key(&name);
    let want = |t: RecordType| qtype == t || qtype == RecordType::ANY;
    if let Some(entry) = zone.get(&key) {
        if let Some(target) =
            entry.cname.as_deref().and_then(|c| Name::from_ascii(format!("{c}.")).ok())
        {
            // Whatever the type asked, the alias is the answer; the client follows it.
            reply.add_answer(Record::from_rdata(name.clone(), TTL, RData::CNAME(CNAME(target))));
        }
        if want(RecordType::A) {
            for a in &entry.a {
                reply.add_answer(Record::from_rdata(name.clone(), TTL, RData::A(A(*a))));
            }
        }
        if want(RecordType::SRV) {
            for s in &entry.srv {
                let Ok(target) = Name::from_ascii(format!("{}.", s.target)) else { continue };
                let srv = SRV::new(0, 100, s.port, target);
                reply.add_answer(Record::from_rdata(name.clone(), TTL, RData::SRV(srv)));
            }
        }
    }
    if want(RecordType::SOA) && key == DOMAIN {
        reply.add_answers(soa());
    }
    if reply.answers.is_empty() {
        reply.metadata.response_code =
            if zone.exists(&key) { ResponseCode::NoError } else { ResponseCode::NXDomain };
        reply.add_authorities(soa());
    }
    reply
}

fn in_cluster(name: &Name) -> bool {
    Name::from_ascii(DOMAIN).is_ok_and(|zone| zone.zone_of(name))
}

/// How the zone spells `name`: lower case, without the root's dot.
fn key(name: &Name) -> String {
    let mut s = name.to_lowercase().to_ascii();
    if s.ends_with('.') {
        s.pop();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::net::Ipv4Addr;

    use hickory_proto::op::Edns;
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::discovery::v1::EndpointSlice;

    const WEB_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 9);

    fn zone() -> Zone {
        let services: Vec<Service> = serde_yaml::from_str(
            r#"
- metadata: {name: web, namespace: default}
  spec: {clusterIP: 10.96.0.9, ports: [{name: http, port: 80}]}
- metadata: {name: headless, namespace: default}
  spec: {clusterIP: None}
- metadata: {name: ext, namespace: default}
  spec: {type: ExternalName, externalName: example.com}
"#,
        )
        .unwrap();
        let mut endpoints = String::new();
        for i in 0..60 {
            endpoints.push_str(&format!(
                "  - {{addresses: [10.244.{}.{}]}}\n",
                i / 200,
                5 + i % 200
            ));
        }
        let slices: Vec<EndpointSlice> = serde_yaml::from_str(&format!(
            "- metadata: {{name: h, namespace: default, labels: {{kubernetes.io/service-name: headless}}}}\n  addressType: IPv4\n  endpoints:\n{endpoints}"
        ))
        .unwrap();
        Zone::build(&services.iter().collect::<Vec<_>>(), &slices.iter().collect::<Vec<_>>())
    }

    /// A query as a stub resolver sends it: recursion desired, one question.
    fn query(name: &str, qtype: RecordType, class: DNSClass) -> Message {
        let mut q = Query::query(Name::from_ascii(name).unwrap(), qtype);
        q.set_query_class(class);
        let mut m = Message::query();
        m.metadata.recursion_desired = true;
        m.add_query(q);
        m
    }

    fn ask_with(zone: &Zone, msg: &Message, limit: Option<usize>) -> Message {
        match respond(zone, &msg.to_vec().unwrap(), false, limit).expect("an answer") {
            Reply::Answer(bytes) => Message::from_vec(&bytes).unwrap(),
            Reply::Forward => panic!("forwarded"),
        }
    }

    fn ask(zone: &Zone, msg: &Message) -> Message {
        ask_with(zone, msg, Some(512))
    }

    fn addresses(m: &Message) -> Vec<Ipv4Addr> {
        m.answers
            .iter()
            .filter_map(|r| match r.data {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect()
    }

    fn has_soa(m: &Message) -> bool {
        m.authorities.iter().any(|r| matches!(r.data, RData::SOA(_)))
    }

    #[test]
    fn a_service_name_answers_its_cluster_ip() {
        let q = query("web.default.svc.cluster.local.", RecordType::A, DNSClass::IN);
        let a = ask(&zone(), &q);
        let m = &a.metadata;
        assert_eq!(
            (m.id, m.message_type, m.response_code),
            (q.metadata.id, MessageType::Response, ResponseCode::NoError)
        );
        assert!(m.authoritative && m.recursion_desired && !m.recursion_available);
        assert_eq!(a.queries, q.queries, "the question is echoed");
        assert_eq!(addresses(&a), vec![WEB_IP]);
        assert_eq!((a.answers[0].ttl, &a.answers[0].name), (TTL, q.queries[0].name()));
    }

    #[test]
    fn names_are_case_insensitive_and_any_answers_a() {
        let a =
            ask(&zone(), &query("WEB.Default.svc.Cluster.Local.", RecordType::ANY, DNSClass::IN));
        assert_eq!(
            (a.metadata.response_code, addresses(&a)),
            (ResponseCode::NoError, vec![WEB_IP])
        );
        assert_eq!(a.answers[0].name.to_ascii(), "WEB.Default.svc.Cluster.Local.");
    }

    #[test]
    fn named_ports_answer_srv() {
        let q = query("_http._tcp.web.default.svc.cluster.local.", RecordType::SRV, DNSClass::IN);
        let a = ask(&zone(), &q);
        let RData::SRV(srv) = &a.answers[0].data else { panic!("{a:?}") };
        assert_eq!(
            (srv.port, srv.target.to_ascii().as_str()),
            (80, "web.default.svc.cluster.local.")
        );
    }

    #[test]
    fn other_types_of_a_known_name_are_empty_answers_with_the_soa() {
        for (name, qtype) in [
            ("web.default.svc.cluster.local.", RecordType::AAAA),
            ("web.default.svc.cluster.local.", RecordType::MX),
            ("default.svc.cluster.local.", RecordType::A),
            ("svc.cluster.local.", RecordType::AAAA),
        ] {
            let a = ask(&zone(), &query(name, qtype, DNSClass::IN));
            assert_eq!(
                (a.metadata.response_code, a.answers.len()),
                (ResponseCode::NoError, 0),
                "{name}"
            );
            assert!(has_soa(&a), "{name} {qtype}");
        }
        let soa = ask(&zone(), &query("cluster.local.", RecordType::SOA, DNSClass::IN));
        assert!(matches!(soa.answers[0].data, RData::SOA(_)));
    }

    #[test]
    fn unknown_cluster_names_do_not_exist() {
        for name in ["nope.default.svc.cluster.local.", "x.web.default.svc.cluster.local."] {
            for qtype in [RecordType::A, RecordType::AAAA] {
                let a = ask(&zone(), &query(name, qtype, DNSClass::IN));
                assert_eq!(
                    (a.metadata.response_code, a.answers.len()),
                    (ResponseCode::NXDomain, 0)
                );
                assert!(has_soa(&a));
            }
        }
    }

    #[test]
    fn external_names_answer_their_alias() {
        let a = ask(&zone(), &query("ext.default.svc.cluster.local.", RecordType::A, DNSClass::IN));
        let RData::CNAME(c) = &a.answers[0].data else { panic!("{a:?}") };
        assert_eq!(c.0.to_ascii(), "example.com.");
    }

    #[test]
    fn names_outside_the_cluster_are_forwarded_or_refused() {
        let q = query("example.com.", RecordType::A, DNSClass::IN);
        assert_eq!(respond(&zone(), &q.to_vec().unwrap(), true, Some(512)), Some(Reply::Forward));
        for q in [
            query("example.com.", RecordType::A, DNSClass::IN),
            query(".", RecordType::A, DNSClass::IN),
            query("web.default.svc.cluster.local.", RecordType::A, DNSClass::CH),
        ] {
            let a = ask(&zone(), &q);
            assert_eq!((a.metadata.response_code, a.answers.len()), (ResponseCode::Refused, 0));
        }
        // Another class is never someone else's business.
        let ch = query("example.com.", RecordType::A, DNSClass::CH);
        assert!(matches!(
            respond(&zone(), &ch.to_vec().unwrap(), true, None),
            Some(Reply::Answer(_))
        ));
    }

    #[test]
    fn large_answers_are_truncated_over_udp_unless_edns_allows_them() {
        let q = query("headless.default.svc.cluster.local.", RecordType::A, DNSClass::IN);
        let udp = ask(&zone(), &q);
        assert!(udp.metadata.truncation && udp.answers.is_empty());
        assert_eq!(addresses(&ask_with(&zone(), &q, None)).len(), 60, "TCP has room");
        let mut big = q.clone();
        let mut edns = Edns::new();
        edns.set_max_payload(4096);
        big.set_edns(edns);
        let a = ask(&zone(), &big);
        assert!(!a.metadata.truncation);
        assert_eq!(addresses(&a).len(), 60);
    }

    #[test]
    fn anything_but_one_plain_question_is_a_format_error() {
        let zone = zone();
        let formerr = |bytes: &[u8]| {
            let Some(Reply::Answer(a)) = respond(&zone, bytes, true, Some(512)) else {
                panic!("{bytes:?}")
            };
            let a = Message::from_vec(&a).unwrap();
            assert_eq!(a.metadata.response_code, ResponseCode::FormErr, "{bytes:?}");
            (a.metadata.id, a.queries.len(), a.answers.len())
        };
        assert_eq!(formerr(&[0, 7, 0xff]), (7, 0, 0));
        let mut two = query("web.default.svc.cluster.local.", RecordType::A, DNSClass::IN);
        two.add_query(Query::query(Name::from_ascii("b.").unwrap(), RecordType::A));
        formerr(&two.to_vec().unwrap());
        let mut none = Message::query();
        none.metadata.recursion_desired = true;
        formerr(&none.to_vec().unwrap());
        let mut reply = query("web.default.svc.cluster.local.", RecordType::A, DNSClass::IN);
        reply.metadata.message_type = MessageType::Response;
        formerr(&reply.to_vec().unwrap());
        let good = query("a.b.", RecordType::A, DNSClass::IN).to_vec().unwrap();
        for cut in 2..good.len() {
            formerr(&good[..cut]);
        }
        assert!(respond(&zone, &[0], true, None).is_none());
        assert!(respond(&zone, &[], true, None).is_none());
    }
}
