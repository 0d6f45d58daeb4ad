//! Cluster DNS for the pods of this node: `<service>.<namespace>.svc.cluster.local` answers the
//! Service's cluster IP (a headless Service: its ready endpoints), served on the pod bridge's
//! gateway address, which every pod's resolv.conf names. Names outside the cluster domain are
//! refused: this resolver does not recurse.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::dns_message::{self, CLASS_IN, Rcode, TYPE_A, TYPE_ANY};

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

/// The answer to one datagram, if it deserves one.
pub fn respond(records: &Records, msg: &[u8]) -> Option<Vec<u8>> {
    let q = match dns_message::parse(msg) {
        Ok(q) => q,
        Err(_) => return dns_message::format_error(msg),
    };
    let in_zone = q.name == DOMAIN || q.name.ends_with(&format!(".{DOMAIN}"));
    if q.qclass != CLASS_IN || !in_zone {
        return Some(dns_message::answer(&q, Rcode::Refused, &[], TTL));
    }
    Some(match records.lookup(&q.name) {
        Some(addrs) if q.qtype == TYPE_A || q.qtype == TYPE_ANY => {
            dns_message::answer(&q, Rcode::NoError, &addrs, TTL)
        }
        // The name exists, without records of that type.
        Some(_) => dns_message::answer(&q, Rcode::NoError, &[], TTL),
        None => dns_message::answer(&q, Rcode::NxDomain, &[], TTL),
    })
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

    use crate::node::dns_message::query;

    fn rcode(reply: &[u8]) -> u8 {
        reply[3] & 0xf
    }

    #[test]
    fn answers_services_and_refuses_the_rest() {
        let records = Records::default();
        let web = service_name("default", "web");
        records.replace([(web.clone(), vec![Ipv4Addr::new(10, 96, 0, 9)])].into());
        let a = respond(&records, &query(&web, TYPE_A)).unwrap();
        assert_eq!((rcode(&a), &a[a.len() - 4..]), (0, &[10, 96, 0, 9][..]));
        let aaaa = respond(&records, &query(&web, dns_message::TYPE_AAAA)).unwrap();
        assert_eq!((rcode(&aaaa), aaaa[7]), (0, 0));
        let missing = respond(&records, &query("nope.default.svc.cluster.local", TYPE_A)).unwrap();
        assert_eq!(rcode(&missing), 3);
        let outside = respond(&records, &query("example.com", TYPE_A)).unwrap();
        assert_eq!(rcode(&outside), 5);
        assert_eq!(rcode(&respond(&records, &[0, 7, 0xff]).unwrap()), 1);
        assert!(respond(&records, &[0]).is_none());
    }
}
