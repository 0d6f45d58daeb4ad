//! Cluster DNS for the pods of this node: `<service>.<namespace>.svc.cluster.local` answers the
//! Service's cluster IP (a headless Service: its ready endpoints), served on the pod bridge's
//! gateway address, which every pod's resolv.conf names. Names outside the cluster domain are
//! refused: this resolver does not recurse. Messages are decoded and encoded by hickory-proto.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

pub const DOMAIN: &str = "cluster.local";
const TTL: u32 = 5;

/// Names to addresses, replaced whenever the Services or Endpoints change.
#[derive(Default)]
pub struct Records(RwLock<HashMap<String, Vec<Ipv4Addr>>>);

impl Records {
    pub fn replace(&self, map: HashMap<String, Vec<Ipv4Addr>>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = map;
    }

    fn lookup(&self, name: &str) -> Option<Vec<Ipv4Addr>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).get(name).cloned()
    }
}

/// The fully qualified name of a Service.
pub fn service_name(namespace: &str, service: &str) -> String {
    format!("{service}.{namespace}.svc.{DOMAIN}").to_ascii_lowercase()
}

/// The answer to one datagram, if it deserves one: a FORMERR for anything but a standard
/// query with one question (nothing when there is not even an id to answer to).
pub fn respond(records: &Records, msg: &[u8]) -> Option<Vec<u8>> {
    let reply = match question(msg) {
        Some((request, query)) => answer(records, &request, query),
        None => {
            let id = u16::from_be_bytes([*msg.first()?, *msg.get(1)?]);
            Message::error_msg(id, OpCode::Query, ResponseCode::FormErr)
        }
    };
    match reply.to_vec() {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            tracing::warn!("cluster DNS: encoding an answer: {e}");
            None
        }
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

/// An authoritative answer to `query`: A records of a known name, NXDOMAIN for an unknown one
/// in the cluster domain, REFUSED for the rest.
fn answer(records: &Records, request: &Message, query: Query) -> Message {
    let mut reply = Message::response(request.metadata.id, OpCode::Query);
    reply.metadata.authoritative = true;
    reply.metadata.recursion_desired = request.metadata.recursion_desired;
    let name = query.name();
    reply.metadata.response_code = if query.query_class() != DNSClass::IN || !in_cluster(name) {
        ResponseCode::Refused
    } else {
        match records.lookup(&key(name)) {
            Some(addrs) => {
                if matches!(query.query_type(), RecordType::A | RecordType::ANY) {
                    for a in addrs {
                        reply.add_answer(Record::from_rdata(name.clone(), TTL, RData::A(A(a))));
                    }
                }
                // Otherwise the name exists, without records of that type.
                ResponseCode::NoError
            }
            None => ResponseCode::NXDomain,
        }
    };
    reply.add_query(query);
    reply
}

fn in_cluster(name: &Name) -> bool {
    Name::from_ascii(DOMAIN).is_ok_and(|zone| zone.zone_of(name))
}

/// How [`Records`] spell `name`: lower case, without the root's dot.
fn key(name: &Name) -> String {
    let mut s = name.to_lowercase().to_ascii();
    if s.ends_with('.') {
        s.pop();
    }
    s
}

/// Serves `records` on UDP `addr`:53 until the process ends, binding again if the address
/// is not there yet (the bridge may come up after the agent).
pub fn start(records: Arc<Records>, addr: Ipv4Addr) {
    tokio::spawn(async move {
        let socket = loop {
            match tokio::net::UdpSocket::bind(SocketAddr::from((addr, 53))).await {
                Ok(s) => break s,
                Err(e) => {
                    tracing::warn!("cluster DNS on {addr}:53: {e}; retrying");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        };
        let mut buf = vec![0u8; 1500];
        loop {
            let Ok((n, peer)) = socket.recv_from(&mut buf).await else { continue };
            if let Some(reply) = respond(&records, &buf[..n]) {
                let _ = socket.send_to(&reply, peer).await;
            }
        }
    });
}

/// The resolver configuration of a pod in `namespace` whose DNS server is `server`.
pub fn resolv_conf(namespace: &str, server: Ipv4Addr) -> (Vec<String>, Vec<String>, Vec<String>) {
    (
        vec![server.to_string()],
        vec![format!("{namespace}.svc.{DOMAIN}"), format!("svc.{DOMAIN}"), DOMAIN.to_string()],
        vec!["ndots:5".to_string()],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use hickory_proto::op::Edns;

    const WEB_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 9);

    fn records() -> Records {
        let records = Records::default();
        records.replace(
            [
                (service_name("default", "web"), vec![WEB_IP]),
                (
                    service_name("default", "headless"),
                    vec![Ipv4Addr::new(10, 244, 0, 5), Ipv4Addr::new(10, 244, 0, 6)],
                ),
            ]
            .into(),
        );
        records
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

    fn ask(records: &Records, msg: &Message) -> Message {
        let reply = respond(records, &msg.to_vec().unwrap()).expect("an answer");
        Message::from_vec(&reply).unwrap()
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

    #[test]
    fn a_service_name_answers_its_cluster_ip() {
        let q = query("web.default.svc.cluster.local.", RecordType::A, DNSClass::IN);
        let a = ask(&records(), &q);
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
        let a = ask(
            &records(),
            &query("WEB.Default.svc.Cluster.Local.", RecordType::ANY, DNSClass::IN),
        );
        assert_eq!(
            (a.metadata.response_code, addresses(&a)),
            (ResponseCode::NoError, vec![WEB_IP])
        );
        assert_eq!(a.answers[0].name.to_ascii(), "WEB.Default.svc.Cluster.Local.");
    }

    #[test]
    fn a_headless_service_answers_every_endpoint() {
        let a = ask(
            &records(),
            &query("headless.default.svc.cluster.local.", RecordType::A, DNSClass::IN),
        );
        assert_eq!(addresses(&a), vec![Ipv4Addr::new(10, 244, 0, 5), Ipv4Addr::new(10, 244, 0, 6)]);
    }

    #[test]
    fn other_types_of_a_known_name_are_empty_answers() {
        let a = ask(
            &records(),
            &query("web.default.svc.cluster.local.", RecordType::AAAA, DNSClass::IN),
        );
        assert_eq!((a.metadata.response_code, a.answers.len()), (ResponseCode::NoError, 0));
    }

    #[test]
    fn unknown_cluster_names_do_not_exist() {
        for name in ["nope.default.svc.cluster.local.", "cluster.local."] {
            let a = ask(&records(), &query(name, RecordType::A, DNSClass::IN));
            assert_eq!(
                (a.metadata.response_code, a.answers.len()),
                (ResponseCode::NXDomain, 0),
                "{name}"
            );
        }
    }

    #[test]
    fn names_outside_the_cluster_and_other_classes_are_refused() {
        for q in [
            query("example.com.", RecordType::A, DNSClass::IN),
            query(".", RecordType::A, DNSClass::IN),
            query("web.default.svc.cluster.local.", RecordType::A, DNSClass::CH),
        ] {
            let a = ask(&records(), &q);
            assert_eq!((a.metadata.response_code, a.answers.len()), (ResponseCode::Refused, 0));
        }
    }

    #[test]
    fn an_edns_query_is_answered() {
        let mut q = query("web.default.svc.cluster.local.", RecordType::A, DNSClass::IN);
        q.set_edns(Edns::new());
        assert_eq!(addresses(&ask(&records(), &q)), vec![WEB_IP]);
    }

    #[test]
    fn anything_but_one_plain_question_is_a_format_error() {
        let records = records();
        let formerr = |bytes: &[u8]| {
            let a = Message::from_vec(&respond(&records, bytes).expect("an answer")).unwrap();
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
        assert!(respond(&records, &[0]).is_none());
        assert!(respond(&records, &[]).is_none());
    }
}
