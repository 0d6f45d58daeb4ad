//! The runtime's configuration of a pod's sandbox: metadata and labels, hostname, log
//! directory, resolver (per dnsPolicy and dnsConfig) and resources (memory and CPU limits).
//! Pure.

use std::net::Ipv4Addr;
use std::path::Path;

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::Pod;

use super::{labels, spec};
use crate::kube::quantity;
use crate::node::dns;

/// The CFS period of sandbox CPU limits, in microseconds.
pub const CPU_PERIOD_US: i64 = 100_000;

/// Where the sandbox's container logs go, under the node's log directory.
pub fn log_directory(log_dir: &Path, pod: &Pod, uid: &str) -> String {
    let (ns, name) = (spec::namespace(pod), spec::name(pod));
    log_dir.join(format!("{ns}_{name}_{uid}")).to_string_lossy().into_owned()
}

/// The sum of the containers' memory limits in bytes (0: none).
fn memory_limit(pod: &Pod) -> i64 {
    spec::containers(pod)
        .iter()
        .filter_map(|c| c.resources.as_ref()?.limits.as_ref()?.get("memory"))
        .filter_map(|q| quantity::value(&q.0))
        .sum()
}

/// The CFS quota for the sandbox when every container has a CPU limit (as the kubelet's pod
/// cgroup), the limits being millicores of [`CPU_PERIOD_US`]; else 0.
fn cpu_quota(pod: &Pod) -> i64 {
    let limits: Option<Vec<i64>> = spec::containers(pod)
        .iter()
        .map(|c| {
            c.resources.as_ref()?.limits.as_ref()?.get("cpu").and_then(|q| quantity::milli(&q.0))
        })
        .collect();
    match limits {
        Some(ms) if !ms.is_empty() => ms.iter().sum::<i64>() * CPU_PERIOD_US / 1000,
        _ => 0,
    }
}

/// The pod's resolver configuration, per its dnsPolicy (ClusterFirst unless told), given the
/// node's cluster DNS server if it serves one.
pub fn dns_config(pod: &Pod, dns_server: Option<Ipv4Addr>) -> Option<cri::DnsConfig> {
    let spec = pod.spec.as_ref();
    let policy = spec.and_then(|s| s.dns_policy.as_deref());
    let (mut servers, mut searches, mut options) = match (policy, dns_server) {
        (Some("None" | "Default"), _) | (_, None) => (Vec::new(), Vec::new(), Vec::new()),
        (_, Some(server)) => dns::resolv_conf(spec::namespace(pod), server),
    };
    if let Some(custom) = spec.and_then(|s| s.dns_config.as_ref()) {
        servers.extend(custom.nameservers.iter().flatten().cloned());
        searches.extend(custom.searches.iter().flatten().cloned());
        for o in custom.options.iter().flatten() {
            let Some(name) = o.name.as_deref() else { continue };
            options.retain(|x| x.split(':').next() != Some(name));
            options.push(match o.value.as_deref() {
                Some(v) => format!("{name}:{v}"),
                None => name.to_owned(),
            });
        }
    }
    (!servers.is_empty() || !searches.is_empty()).then_some(cri::DnsConfig {
        servers,
        searches,
        options,
    })
}

/// The sandbox configuration of attempt `attempt` of `pod`.
pub fn sandbox_config(
    pod: &Pod,
    uid: &str,
    attempt: u32,
    log_dir: &Path,
    dns_server: Option<Ipv4Addr>,
) -> cri::PodSandboxConfig {
    let (ns, name) = (spec::namespace(pod), spec::name(pod));
    let memory = memory_limit(pod);
    let cpu_quota = cpu_quota(pod);
    let hostname = pod.spec.as_ref().and_then(|s| s.hostname.clone());
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.to_owned(),
            uid: uid.to_owned(),
            namespace: ns.to_owned(),
            attempt,
        }),
        hostname: hostname.unwrap_or_else(|| name.to_owned()),
        log_directory: log_directory(log_dir, pod, uid),
        labels: labels::sandbox(uid, name, ns),
        dns_config: dns_config(pod, dns_server),
        port_mappings: port_mappings(pod),
        linux: Some(cri::LinuxPodSandboxConfig {
            resources: (memory > 0 || cpu_quota > 0).then(|| cri::LinuxContainerResources {
                // The pod's own limit: each runtime handler adds what its sandbox needs.
                memory_limit_in_bytes: memory,
                cpu_period: CPU_PERIOD_US,
                cpu_quota,
                ..Default::default()
            }),
            sysctls: pod
                .spec
                .as_ref()
                .and_then(|s| s.security_context.as_ref()?.sysctls.as_ref())
                .into_iter()
                .flatten()
                .map(|s| (s.name.clone(), s.value.clone()))
                .collect(),
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(namespace_options(pod)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The containers' ports that ask for a host port.
fn port_mappings(pod: &Pod) -> Vec<cri::PortMapping> {
    spec::containers(pod)
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.host_port.is_some_and(|h| h != 0))
        .map(|p| cri::PortMapping {
            protocol: match p.protocol.as_deref() {
                Some("UDP") => cri::Protocol::Udp,
                Some("SCTP") => cri::Protocol::Sctp,
                _ => cri::Protocol::Tcp,
            } as i32,
            container_port: p.container_port,
            host_port: p.host_port.unwrap_or_default(),
            host_ip: p.host_ip.clone().unwrap_or_default(),
        })
        .collect()
}

/// hostNetwork, hostPID and hostIPC as the runtime is asked for them (it refuses the node's
/// namespaces with the reason), and whether the pod's containers share one PID namespace.
pub(super) fn namespace_options(pod: &Pod) -> cri::NamespaceOption {
    let spec = pod.spec.as_ref();
    let host = |f: fn(&k8s_openapi::api::core::v1::PodSpec) -> Option<bool>| {
        spec.and_then(f).unwrap_or(false)
    };
    let mode = |node: bool, otherwise: cri::NamespaceMode| {
        if node { cri::NamespaceMode::Node as i32 } else { otherwise as i32 }
    };
    let shared = host(|s| s.share_process_namespace);
    cri::NamespaceOption {
        network: mode(host(|s| s.host_network), cri::NamespaceMode::Pod),
        pid: mode(
            host(|s| s.host_pid),
            if shared { cri::NamespaceMode::Pod } else { cri::NamespaceMode::Container },
        ),
        ipc: mode(host(|s| s.host_ipc), cri::NamespaceMode::Pod),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> Pod {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn limits_size_the_sandbox() {
        let p = pod(r#"
metadata: {name: p, namespace: n}
spec:
  hostname: h
  containers:
  - {name: a, resources: {limits: {memory: 64Mi, cpu: 500m}}}
  - {name: b, resources: {limits: {memory: 32Mi}}}
"#);
        let c = sandbox_config(&p, "u", 2, Path::new("/logs"), None);
        let r = c.linux.unwrap().resources.unwrap();
        assert_eq!(r.memory_limit_in_bytes, 96 << 20);
        assert_eq!(r.cpu_quota, 0, "b has no CPU limit: no quota");
        assert_eq!((c.hostname.as_str(), c.log_directory.as_str()), ("h", "/logs/n_p_u"));
        assert_eq!(c.metadata.unwrap().attempt, 2);

        let p = pod("{metadata: {name: p}, \
              spec: {containers: [{name: a, resources: {limits: {cpu: 250m}}}]}}");
        let r = sandbox_config(&p, "u", 0, Path::new("/l"), None).linux.unwrap().resources.unwrap();
        assert_eq!((r.memory_limit_in_bytes, r.cpu_quota), (0, 25_000));
        let p = pod("{metadata: {name: p}, spec: {containers: [{name: a}]}}");
        let c = sandbox_config(&p, "u", 0, Path::new("/l"), None);
        assert!(c.linux.unwrap().resources.is_none());
        assert_eq!(c.hostname, "p");
    }

    #[test]
    fn dns_follows_the_policy() {
        let server = Some(Ipv4Addr::new(10, 88, 0, 1));
        let p = pod("{metadata: {name: p, namespace: team}, spec: {containers: []}}");
        let d = dns_config(&p, server).unwrap();
        assert_eq!(d.servers, ["10.88.0.1"]);
        assert_eq!(d.searches[0], "team.svc.cluster.local");
        assert!(dns_config(&p, None).is_none());
        let p = pod(r#"
metadata: {name: p}
spec:
  containers: []
  dnsPolicy: None
  dnsConfig: {nameservers: [1.1.1.1], options: [{name: ndots, value: "2"}, {name: edns0}]}
"#);
        let d = dns_config(&p, server).unwrap();
        assert_eq!(d.servers, ["1.1.1.1"]);
        assert_eq!(d.options, ["ndots:2", "edns0"]);
    }

    #[test]
    fn host_ports_sysctls_and_namespaces_reach_the_runtime() {
        let p = pod(r#"
metadata: {name: p}
spec:
  hostPID: true
  shareProcessNamespace: true
  securityContext: {sysctls: [{name: net.core.somaxconn, value: "1024"}]}
  containers:
  - name: a
    ports: [{containerPort: 80, hostPort: 8080}, {containerPort: 81}, {containerPort: 53, hostPort: 53, protocol: UDP}]
"#);
        let c = sandbox_config(&p, "u", 0, Path::new("/l"), None);
        let ports: Vec<_> = c.port_mappings.iter().map(|m| (m.host_port, m.protocol)).collect();
        assert_eq!(ports, [(8080, cri::Protocol::Tcp as i32), (53, cri::Protocol::Udp as i32)]);
        let linux = c.linux.unwrap();
        assert_eq!(linux.sysctls["net.core.somaxconn"], "1024");
        let ns = linux.security_context.unwrap().namespace_options.unwrap();
        assert_eq!(ns.pid, cri::NamespaceMode::Node as i32);
        assert_eq!(ns.network, cri::NamespaceMode::Pod as i32);
        let p = pod("{metadata: {name: p}, spec: {containers: [{name: a}]}}");
        let c = sandbox_config(&p, "u", 0, Path::new("/l"), None);
        let ns = c.linux.unwrap().security_context.unwrap().namespace_options.unwrap();
        assert_eq!(ns.pid, cri::NamespaceMode::Container as i32, "the kubelet's default");
    }
}
