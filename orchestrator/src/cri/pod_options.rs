//! Pod-level options of a sandbox config that the runtime either honours or refuses with a
//! clear error, never silently ignores: namespace sharing with the node, and sysctls (network
//! ones applied on the node, IPC ones handed to the sandbox).

use std::io::Write;
use std::process::{Command, Stdio};

use k8s_cri::v1 as cri;
use sentry_kvm::kernel::ipc::limits::IpcSetting;

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

/// A network sysctl a pod asked for, checked: its path under /proc/sys and its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkSysctl {
    pub name: String,
    path: String,
    value: String,
}

impl NetworkSysctl {
    /// Below /proc/sys, with slashes.
    pub fn path(&self) -> &str {
        &self.path
    }
    pub fn value(&self) -> &str {
        &self.value
    }
}

/// The pod's sysctls, checked and sorted by where they apply: network ones (`net.*`) in the
/// pod's network namespace on the node, IPC ones (`kernel.shm*`, `kernel.msg*`, `kernel.sem`)
/// in the sandbox's own IPC namespace, which the Sentry sets up from them when it starts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodSysctls {
    pub network: Vec<NetworkSysctl>,
    pub ipc: Vec<IpcSetting>,
}

impl PodSysctls {
    pub fn is_empty(&self) -> bool {
        self.network.is_empty() && self.ipc.is_empty()
    }
}

/// The pod's sysctls, each checked (name and value); others are refused with the reason.
pub fn sysctls(config: &cri::PodSandboxConfig) -> Result<PodSysctls, CriError> {
    let Some(linux) = &config.linux else { return Ok(PodSysctls::default()) };
    let mut out = PodSysctls::default();
    // In name order, so that a refusal names the same sysctl every time.
    let mut requested: Vec<(&String, &String)> = linux.sysctls.iter().collect();
    requested.sort();
    for (name, value) in requested {
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
        if path.starts_with("net/") {
            out.network.push(NetworkSysctl { name: name.clone(), path, value: value.clone() });
            continue;
        }
        if let Some(sysctl) = IpcSetting::sysctl_named(&path) {
            // Checked as the Sentry's /proc/sys checks a write, before anything starts.
            sysctl.check(value).map_err(|e| CriError::Invalid(format!("sysctl {name}: {e}")))?;
            out.ipc.push(IpcSetting { sysctl, value: value.clone() });
            continue;
        }
        let why = if path.starts_with("fs/mqueue/") {
            "POSIX message queues are not supported"
        } else if ["kernel/shm", "kernel/msg", "kernel/sem"].iter().any(|p| path.starts_with(p)) {
            "not an IPC sysctl the sandbox has"
        } else {
            "it is not namespaced: it would change the node"
        };
        return Err(CriError::Invalid(format!("sysctl {name} is refused: {why}")));
    }
    Ok(out)
}

/// Sets `sysctls` inside network namespace `netns` (a name under /var/run/netns).
pub fn apply(netns: &str, sysctls: &[NetworkSysctl]) -> Result<(), CriError> {
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
    use sentry_kvm::kernel::ipc::limits::IpcSysctl;

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
    fn network_sysctls_with_clean_names_pass() {
        let ok = sysctls(&config(&[("net.ipv4.ip_unprivileged_port_start", "0")])).unwrap();
        assert_eq!(ok.network[0].path, "net/ipv4/ip_unprivileged_port_start");
        let dotted = sysctls(&config(&[("net/ipv4/conf/eth0.1/forwarding", "1")])).unwrap();
        assert_eq!(dotted.network[0].path, "net/ipv4/conf/eth0.1/forwarding");
        for bad in ["kernel.hostname", "vm.overcommit_memory", "net/../kernel/x", "net..x", ""] {
            assert!(sysctls(&config(&[(bad, "1")])).is_err(), "{bad}");
        }
        assert!(sysctls(&config(&[("net.core.somaxconn", "1\n2")])).is_err());
    }

    #[test]
    fn ipc_sysctls_are_typed_and_their_values_checked() {
        let got = sysctls(&config(&[
            ("kernel.shmmax", "1048576"),
            ("kernel/sem", "250 256000 32 128"),
            ("kernel.shm_rmid_forced", "1"),
            ("net.core.somaxconn", "1024"),
        ]))
        .unwrap();
        assert_eq!(got.network.len(), 1);
        let names: Vec<IpcSysctl> = got.ipc.iter().map(|s| s.sysctl).collect();
        assert_eq!(names, [IpcSysctl::ShmRmidForced, IpcSysctl::ShmMax, IpcSysctl::Sem]);
        for (name, value, want) in [
            ("kernel.shmmax", "-1", "kernel.shmmax"),
            ("kernel.msgmni", "40000", "out of range"),
            ("kernel.sem", "1 2 3 4 5", "kernel.sem"),
            ("kernel.shmfoo", "1", "not an IPC sysctl"),
            ("fs.mqueue.msg_max", "10", "POSIX message queues"),
        ] {
            let e = sysctls(&config(&[(name, value)])).unwrap_err().to_string();
            assert!(e.contains(want), "{name}={value}: {e}");
        }
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
