//! Pod-level options of a sandbox config that the runtime either honours or refuses with a
//! clear error, never silently ignores: namespace sharing with the node, and sysctls.

use std::io::Write;
use std::process::{Command, Stdio};

use k8s_cri::v1 as cri;

use super::CriError;

/// Refuses sharing the node's network, PID or IPC namespace: a sandboxed pod never gets the
/// node's (that is what the sandbox is for).
pub fn check_namespaces(config: &cri::PodSandboxConfig) -> Result<(), CriError> {
    let Some(ns) = config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.as_ref())
    else {
        return Ok(());
    };
    let node = cri::NamespaceMode::Node as i32;
    for (mode, what, field) in [
        (ns.network, "network", "hostNetwork"),
        (ns.pid, "PID", "hostPID"),
        (ns.ipc, "IPC", "hostIPC"),
    ] {
        if mode == node {
            return Err(CriError::Invalid(format!(
                "the node's {what} namespace is not available to sandboxed pods ({field} is refused)"
            )));
        }
    }
    Ok(())
}

/// A sysctl a pod asked for, checked: its path under /proc/sys and its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sysctl {
    pub name: String,
    path: String,
    value: String,
}

impl Sysctl {
    /// Below /proc/sys, with slashes.
    pub fn path(&self) -> &str {
        &self.path
    }
    pub fn value(&self) -> &str {
        &self.value
    }
}

/// The pod's sysctls, all of them network ones (`net.*`, which live in the pod's network
/// namespace); others are refused with the reason.
pub fn sysctls(config: &cri::PodSandboxConfig) -> Result<Vec<Sysctl>, CriError> {
    let Some(linux) = &config.linux else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for (name, value) in &linux.sysctls {
        // Both spellings: dots (net.ipv4.ip_forward) or slashes (for names with dots in them).
        let path = if name.contains('/') { name.clone() } else { name.replace('.', "/") };
        let clean = !path.is_empty()
            && path.split('/').all(|c| {
                !c.is_empty() && c != "." && c != ".." && c.bytes().all(|b| b.is_ascii_graphic())
            });
        if !clean {
            return Err(CriError::Invalid(format!("sysctl {name:?} is not a valid name")));
        }
        if value.contains('\n') {
            return Err(CriError::Invalid(format!("sysctl {name}: the value has a newline")));
        }
        if !path.starts_with("net/") {
            let why = if ["kernel/shm", "kernel/msg", "kernel/sem", "fs/mqueue/"]
                .iter()
                .any(|p| path.starts_with(p))
            {
                "IPC sysctls are not supported yet"
            } else {
                "it is not namespaced: it would change the node"
            };
            return Err(CriError::Invalid(format!("sysctl {name} is refused: {why}")));
        }
        out.push(Sysctl { name: name.clone(), path, value: value.clone() });
    }
    Ok(out)
}

/// Sets `sysctls` inside network namespace `netns` (a name under /var/run/netns).
pub fn apply(netns: &str, sysctls: &[Sysctl]) -> Result<(), CriError> {
    for s in sysctls {
        // The file is opened by a process inside the namespace: /proc/sys/net shows the
        // opener's namespace.
        let file = format!("/proc/sys/{}", s.path);
        let mut child = Command::new("ip")
            .args(["netns", "exec", netns, "tee", &file])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| CriError::Network(format!("running ip netns exec: {e}")))?;
        if let Some(mut stdin) = child.stdin.take() {
            // A failed write shows as tee's error below.
            let _ = stdin.write_all(s.value.as_bytes());
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            return Err(CriError::Invalid(format!(
                "sysctl {}={}: {}",
                s.name,
                s.value,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(sysctls: &[(&str, &str)]) -> cri::PodSandboxConfig {
        cri::PodSandboxConfig {
            linux: Some(cri::LinuxPodSandboxConfig {
                sysctls: sysctls.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn only_network_sysctls_with_clean_names_pass() {
        let ok = sysctls(&config(&[("net.ipv4.ip_unprivileged_port_start", "0")])).unwrap();
        assert_eq!(ok[0].path, "net/ipv4/ip_unprivileged_port_start");
        let dotted = sysctls(&config(&[("net/ipv4/conf/eth0.1/forwarding", "1")])).unwrap();
        assert_eq!(dotted[0].path, "net/ipv4/conf/eth0.1/forwarding");
        for bad in ["kernel.hostname", "vm.overcommit_memory", "net/../kernel/x", "net..x", ""] {
            assert!(sysctls(&config(&[(bad, "1")])).is_err(), "{bad}");
        }
        let ipc = sysctls(&config(&[("kernel.shm_rmid_forced", "1")])).unwrap_err();
        assert!(ipc.to_string().contains("IPC"), "{ipc}");
        assert!(sysctls(&config(&[("net.core.somaxconn", "1\n2")])).is_err());
    }

    #[test]
    fn the_nodes_namespaces_are_refused() {
        let mut c = cri::PodSandboxConfig::default();
        assert!(check_namespaces(&c).is_ok());
        let options = |network, pid| cri::NamespaceOption { network, pid, ..Default::default() };
        let set = |c: &mut cri::PodSandboxConfig, o| {
            c.linux = Some(cri::LinuxPodSandboxConfig {
                security_context: Some(cri::LinuxSandboxSecurityContext {
                    namespace_options: Some(o),
                    ..Default::default()
                }),
                ..Default::default()
            })
        };
        set(&mut c, options(cri::NamespaceMode::Pod as i32, cri::NamespaceMode::Container as i32));
        assert!(check_namespaces(&c).is_ok());
        set(&mut c, options(cri::NamespaceMode::Node as i32, 0));
        assert!(check_namespaces(&c).unwrap_err().to_string().contains("hostNetwork"));
        set(&mut c, options(0, cri::NamespaceMode::Node as i32));
        assert!(check_namespaces(&c).unwrap_err().to_string().contains("PID"));
    }
}
