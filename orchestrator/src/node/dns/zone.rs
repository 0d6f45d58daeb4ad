//! The cluster zone, built from Services and EndpointSlices as the Kubernetes DNS
//! specification lays it out: `<svc>.<ns>.svc.<zone>` is the cluster IP (A), or for a headless
//! Service every ready endpoint (A) and a name per endpoint (`<hostname>` or the dashed
//! address); `_<port>._<proto>.<svc>.<ns>.svc.<zone>` SRV records for named ports; an
//! ExternalName Service is a CNAME. Pure: no I/O, odd objects are left out.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::DOMAIN;
use crate::node::nft_proxy::model::{is_ready, slices_by_service};

/// An SRV record's port and target name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SrvTarget {
    pub port: u16,
    pub target: String,
}

/// The records of one name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    pub a: Vec<Ipv4Addr>,
    pub srv: Vec<SrvTarget>,
    pub cname: Option<String>,
}

/// Names (lower case, no trailing dot) to their records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Zone {
    names: HashMap<String, Entry>,
}

/// The fully qualified name of a Service.
pub fn service_name(namespace: &str, service: &str) -> String {
    format!("{service}.{namespace}.svc.{DOMAIN}").to_ascii_lowercase()
}

/// A DNS label as Kubernetes names are: 1 to 63 of [a-z0-9-].
fn is_label(s: &str) -> bool {
    (1..=63).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl Zone {
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.names.get(name)
    }

    /// Whether `name` exists: it has records, or names below it do (an empty non-terminal
    /// such as `svc.cluster.local`), or it is the zone's apex. Where it does not, the answer
    /// is NXDOMAIN; where it does without records of the type asked, an empty NOERROR.
    pub fn exists(&self, name: &str) -> bool {
        if name == DOMAIN || self.names.contains_key(name) {
            return true;
        }
        let suffix = format!(".{name}");
        self.names.keys().any(|k| k.ends_with(&suffix))
    }

    fn entry(&mut self, name: String) -> &mut Entry {
        self.names.entry(name).or_default()
    }

    pub fn build(services: &[&Service], slices: &[&EndpointSlice]) -> Zone {
        let by_service = slices_by_service(slices);
        let mut zone = Zone::default();
        for s in services {
            let (Some(ns), Some(name)) = (&s.metadata.namespace, &s.metadata.name) else {
                continue;
            };
            if !is_label(ns) || !is_label(name) {
                continue;
            }
            let Some(spec) = &s.spec else { continue };
            let fqdn = service_name(ns, name);
            if spec.type_.as_deref() == Some("ExternalName") {
                if let Some(ext) = spec.external_name.as_deref().filter(|e| !e.is_empty()) {
                    zone.entry(fqdn).cname = Some(ext.trim_end_matches('.').to_ascii_lowercase());
                }
                continue;
            }
            let slices = by_service.get(&(ns.clone(), name.clone())).cloned().unwrap_or_default();
            let ports = spec.ports.as_deref().unwrap_or_default();
            match spec.cluster_ip.as_deref().and_then(|ip| ip.parse::<Ipv4Addr>().ok()) {
                Some(ip) => {
                    zone.entry(fqdn.clone()).a.push(ip);
                    for p in ports {
                        let (Some(pname), Ok(port)) = (&p.name, u16::try_from(p.port)) else {
                            continue;
                        };
                        let proto = p.protocol.as_deref().unwrap_or("TCP");
                        let srv = srv_name(pname, proto, &fqdn);
                        let target = fqdn.clone();
                        if let Some(srv) = srv {
                            zone.entry(srv).srv.push(SrvTarget { port, target });
                        }
                    }
                }
                None => zone.add_headless(&fqdn, &slices),
            }
        }
        for e in zone.names.values_mut() {
            e.a.sort();
            e.a.dedup();
            e.srv.sort();
            e.srv.dedup();
        }
        zone
    }

    /// A headless Service: its ready IPv4 endpoints under its name and each under a name of
    /// its own, and SRV records of the endpoints' named ports pointing at those.
    fn add_headless(&mut self, fqdn: &str, slices: &[&EndpointSlice]) {
        // Keep the name even without endpoints: it exists, with no addresses yet.
        self.entry(fqdn.to_owned());
        for slice in slices.iter().filter(|s| s.address_type == "IPv4") {
            for ep in slice.endpoints.iter().filter(|e| is_ready(e)) {
                let Some(ip) = ep.addresses.first().and_then(|a| a.parse::<Ipv4Addr>().ok()) else {
                    continue;
                };
                let host = ep
                    .hostname
                    .clone()
                    .filter(|h| is_label(h))
                    .unwrap_or_else(|| ip.to_string().replace('.', "-"));
                let own = format!("{host}.{fqdn}").to_ascii_lowercase();
                self.entry(fqdn.to_owned()).a.push(ip);
                self.entry(own.clone()).a.push(ip);
                for p in slice.ports.iter().flatten() {
                    let (Some(pname), Some(port)) =
                        (&p.name, p.port.and_then(|x| u16::try_from(x).ok()))
                    else {
                        continue;
                    };
                    let proto = p.protocol.as_deref().unwrap_or("TCP");
                    if let Some(srv) = srv_name(pname, proto, fqdn) {
                        self.entry(srv).srv.push(SrvTarget { port, target: own.clone() });
                    }
                }
            }
        }
    }
}

/// `_<port>._<proto>.<service>`, for ports whose names can be DNS labels.
fn srv_name(port: &str, proto: &str, fqdn: &str) -> Option<String> {
    let proto = proto.to_ascii_lowercase();
    (is_label(port) && is_label(&proto)).then(|| format!("_{port}._{proto}.{fqdn}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse<T: serde::de::DeserializeOwned>(yaml: &str) -> Vec<T> {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn zone() -> Zone {
        let services: Vec<Service> = parse(
            r#"
- metadata: {name: web, namespace: default}
  spec:
    clusterIP: 10.96.0.10
    ports: [{name: http, port: 80}, {name: dns, port: 53, protocol: UDP}, {port: 81}]
- metadata: {name: db, namespace: default}
  spec: {clusterIP: None, ports: [{name: pg, port: 5432}]}
- metadata: {name: empty, namespace: default}
  spec: {clusterIP: None}
- metadata: {name: ext, namespace: default}
  spec: {type: ExternalName, externalName: Example.COM.}
- metadata: {name: "Bad_Name", namespace: default}
  spec: {clusterIP: 10.96.0.12}
- metadata: {name: noport, namespace: x}
  spec: {clusterIP: 10.96.0.13, ports: [{name: big, port: 70000}, {name: "bad name", port: 1}]}
- metadata: {name: nospec, namespace: x}
- metadata: {namespace: x}
"#,
        );
        let slices: Vec<EndpointSlice> = parse(
            r#"
- metadata: {name: db-a, namespace: default, labels: {kubernetes.io/service-name: db}}
  addressType: IPv4
  ports: [{name: pg, port: 5432, protocol: TCP}, {name: x, port: 99999}]
  endpoints:
  - {addresses: [10.88.0.9], hostname: db-0}
  - {addresses: [10.88.0.10]}
  - {addresses: [10.88.0.11], conditions: {ready: false}}
  - {addresses: ["not an ip"]}
  - {addresses: [10.88.0.12], hostname: "UPPER_and_bad"}
"#,
        );
        Zone::build(&services.iter().collect::<Vec<_>>(), &slices.iter().collect::<Vec<_>>())
    }

    fn srv(port: u16, target: &str) -> SrvTarget {
        SrvTarget { port, target: target.into() }
    }

    #[test]
    fn cluster_ip_services_answer_their_ip_and_srv_per_named_port() {
        let z = zone();
        let web = "web.default.svc.cluster.local";
        assert_eq!(z.get(web).unwrap().a, vec![Ipv4Addr::new(10, 96, 0, 10)]);
        assert_eq!(z.get(&format!("_http._tcp.{web}")).unwrap().srv, vec![srv(80, web)]);
        assert_eq!(z.get(&format!("_dns._udp.{web}")).unwrap().srv, vec![srv(53, web)]);
        assert!(z.get(&format!("_dns._tcp.{web}")).is_none());
    }

    #[test]
    fn headless_services_answer_ready_endpoints_each_with_a_name() {
        let z = zone();
        let db = "db.default.svc.cluster.local";
        let ips = |l: &[u8]| l.iter().map(|&d| Ipv4Addr::new(10, 88, 0, d)).collect::<Vec<_>>();
        assert_eq!(z.get(db).unwrap().a, ips(&[9, 10, 12]));
        assert_eq!(z.get(&format!("db-0.{db}")).unwrap().a, ips(&[9]));
        assert_eq!(z.get(&format!("10-88-0-10.{db}")).unwrap().a, ips(&[10]));
        assert_eq!(z.get(&format!("10-88-0-12.{db}")).unwrap().a, ips(&[12]));
        let want = vec![
            srv(5432, &format!("10-88-0-10.{db}")),
            srv(5432, &format!("10-88-0-12.{db}")),
            srv(5432, &format!("db-0.{db}")),
        ];
        assert_eq!(z.get(&format!("_pg._tcp.{db}")).unwrap().srv, want);
        // A headless Service without endpoints exists, empty.
        assert_eq!(z.get("empty.default.svc.cluster.local"), Some(&Entry::default()));
    }

    #[test]
    fn external_names_are_cnames_and_odd_objects_are_left_out() {
        let z = zone();
        let ext = z.get("ext.default.svc.cluster.local").unwrap();
        assert_eq!(ext.cname.as_deref(), Some("example.com"));
        assert!(z.get("bad_name.default.svc.cluster.local").is_none());
        assert!(z.get("noport.x.svc.cluster.local").is_some());
        assert!(!z.names.keys().any(|k| k.contains("_big") || k.contains("bad name")));
        assert!(z.get("nospec.x.svc.cluster.local").is_none());
    }

    #[test]
    fn parents_of_names_exist_and_strangers_do_not() {
        let z = zone();
        for name in ["cluster.local", "svc.cluster.local", "default.svc.cluster.local"] {
            assert!(z.exists(name), "{name}");
        }
        for name in ["nope.default.svc.cluster.local", "eb.default.svc.cluster.local"] {
            assert!(!z.exists(name), "{name}");
        }
    }
}
