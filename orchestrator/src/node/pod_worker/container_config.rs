//! The runtime's configuration of one container run: image, command and args with `$(VAR)`
//! expanded, environment, mounts, labels, log path (one file per run) and user. Pure.

use std::collections::HashMap;
use std::path::Path;

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{Container, Pod};

use super::{labels, spec};
use crate::node::env;

/// The log file of run `attempt` of container `name`, relative to the sandbox's log directory.
pub fn log_path(name: &str, attempt: u32) -> String {
    format!("{name}/{attempt}.log")
}

/// The configuration of run `attempt` of `c`, with its environment and mounts.
/// `pid_target`: the runtime id of the container whose PID namespace `c` joins (an ephemeral
/// container's target).
#[allow(clippy::too_many_arguments)]
pub fn container_config(
    pod: &Pod,
    uid: &str,
    c: &Container,
    attempt: u32,
    vars: Vec<(String, String)>,
    mounts: Vec<cri::Mount>,
    seccomp_dir: &Path,
    pid_target: Option<&str>,
) -> cri::ContainerConfig {
    let var_map: HashMap<String, String> = vars.iter().cloned().collect();
    let expand = |v: &Option<Vec<String>>| -> Vec<String> {
        v.iter().flatten().map(|s| env::expand(s, &var_map)).collect()
    };
    cri::ContainerConfig {
        mounts,
        stdin: c.stdin.unwrap_or(false),
        stdin_once: c.stdin_once.unwrap_or(false),
        tty: c.tty.unwrap_or(false),
        metadata: Some(cri::ContainerMetadata { name: c.name.clone(), attempt }),
        image: Some(cri::ImageSpec {
            image: c.image.clone().unwrap_or_default(),
            ..Default::default()
        }),
        command: expand(&c.command),
        args: expand(&c.args),
        working_dir: c.working_dir.clone().unwrap_or_default(),
        envs: vars.into_iter().map(|(key, value)| cri::KeyValue { key, value }).collect(),
        labels: labels::container(uid, spec::name(pod), spec::namespace(pod), &c.name),
        log_path: log_path(&c.name, attempt),
        linux: Some(cri::LinuxContainerConfig {
            security_context: Some(cri::LinuxContainerSecurityContext {
                namespace_options: Some(namespace_options(pod, pid_target)),
                ..security_context(pod, c, seccomp_dir)
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The container's namespaces as the kubelet asks for them: the pod's, its PID namespace its
/// own unless the pod shares one (`shareProcessNamespace`), or its target's.
fn namespace_options(pod: &Pod, pid_target: Option<&str>) -> cri::NamespaceOption {
    let pod_wide = super::sandbox_config::namespace_options(pod);
    match pid_target {
        Some(target) => cri::NamespaceOption {
            pid: cri::NamespaceMode::Target as i32,
            target_id: target.to_owned(),
            ..pod_wide
        },
        None => pod_wide,
    }
}

/// What /proc and /sys hide from an unprivileged container (the kubelet's defaults).
const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
const READONLY_PATHS: &[&str] =
    &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// The container's security context over the pod's, as the kubelet merges them: the
/// container's user and group win, the pod adds supplementary groups (and fsGroup).
/// A Localhost seccomp profile names a file under `seccomp_dir` (the node's
/// `<root-dir>/seccomp`, as the kubelet's); one climbing out of it is passed as given, and the
/// runtime refuses it for not being absolute.
fn security_context(
    pod: &Pod,
    c: &Container,
    seccomp_dir: &Path,
) -> cri::LinuxContainerSecurityContext {
    let sc = c.security_context.as_ref();
    let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let id = |v: Option<i64>| v.map(|value| cri::Int64Value { value });
    let privileged = sc.and_then(|s| s.privileged).unwrap_or(false);
    let mut supplemental_groups: Vec<i64> =
        psc.and_then(|p| p.supplemental_groups.clone()).unwrap_or_default();
    supplemental_groups.extend(psc.and_then(|p| p.fs_group));
    let caps = sc.and_then(|s| s.capabilities.as_ref());
    let seccomp = sc
        .and_then(|s| s.seccomp_profile.as_ref())
        .or_else(|| psc.and_then(|p| p.seccomp_profile.as_ref()))
        .map(|p| cri::SecurityProfile {
            profile_type: match p.type_.as_str() {
                "RuntimeDefault" => cri::security_profile::ProfileType::RuntimeDefault,
                "Localhost" => cri::security_profile::ProfileType::Localhost,
                _ => cri::security_profile::ProfileType::Unconfined,
            } as i32,
            localhost_ref: match p.localhost_profile.as_deref() {
                Some(r) if !r.split('/').any(|c| c == "..") && !r.is_empty() => {
                    seccomp_dir.join(r).to_string_lossy().into_owned()
                }
                other => other.unwrap_or_default().to_owned(),
            },
        });
    let unmasked = privileged || sc.and_then(|s| s.proc_mount.as_deref()) == Some("Unmasked");
    let paths = |list: &[&str]| -> Vec<String> {
        if unmasked { Vec::new() } else { list.iter().map(|p| p.to_string()).collect() }
    };
    cri::LinuxContainerSecurityContext {
        run_as_user: id(sc.and_then(|s| s.run_as_user).or(psc.and_then(|p| p.run_as_user))),
        run_as_group: id(sc.and_then(|s| s.run_as_group).or(psc.and_then(|p| p.run_as_group))),
        supplemental_groups,
        readonly_rootfs: sc.and_then(|s| s.read_only_root_filesystem).unwrap_or(false),
        privileged,
        // allowPrivilegeEscalation defaults to true, except that privileged implies it.
        no_new_privs: !privileged && sc.and_then(|s| s.allow_privilege_escalation) == Some(false),
        capabilities: caps.map(|c| cri::Capability {
            add_capabilities: c.add.clone().unwrap_or_default(),
            drop_capabilities: c.drop.clone().unwrap_or_default(),
            ..Default::default()
        }),
        seccomp,
        masked_paths: paths(MASKED_PATHS),
        readonly_paths: paths(READONLY_PATHS),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_see_the_environment_and_runs_log_apart() {
        let pod: Pod =
            serde_yaml::from_str("{metadata: {name: p, namespace: n}, spec: {containers: []}}")
                .unwrap();
        let c: Container = serde_yaml::from_str(
            "{name: web, image: 'web:v1', command: [sh, -c, 'echo $(GREETING)'], \
              args: ['$(NOPE)'], securityContext: {runAsUser: 1000}}",
        )
        .unwrap();
        let vars = vec![("GREETING".to_owned(), "hi".to_owned())];
        let cfg = container_config(&pod, "uid-1", &c, 3, vars, Vec::new(), Path::new("/s"), None);
        assert_eq!(cfg.command, ["sh", "-c", "echo hi"]);
        assert_eq!(cfg.args, ["$(NOPE)"]);
        assert_eq!(cfg.log_path, "web/3.log");
        assert_eq!(cfg.labels[labels::LABEL_CONTAINER], "web");
        assert_eq!(cfg.labels[labels::LABEL_POD_UID], "uid-1");
        let user = cfg.linux.unwrap().security_context.unwrap().run_as_user.unwrap();
        assert_eq!(user.value, 1000);
    }

    /// What the kubelet sends: CONTAINER by default, POD with shareProcessNamespace, TARGET
    /// (with the target's runtime id) for an ephemeral container with a target.
    #[test]
    fn pid_namespaces_are_asked_for_as_the_kubelet_does() {
        let c: Container = serde_yaml::from_str("{name: app, image: busybox}").unwrap();
        let pid_of = |pod: &str, target: Option<&str>| {
            let pod: Pod = serde_yaml::from_str(pod).unwrap();
            let cfg = container_config(&pod, "u", &c, 0, vec![], vec![], Path::new("/s"), target);
            cfg.linux.unwrap().security_context.unwrap().namespace_options.unwrap()
        };
        let own = pid_of("{spec: {containers: []}}", None);
        assert_eq!(own.pid, cri::NamespaceMode::Container as i32);
        assert_eq!(own.network, cri::NamespaceMode::Pod as i32);
        let shared = pid_of("{spec: {shareProcessNamespace: true, containers: []}}", None);
        assert_eq!(shared.pid, cri::NamespaceMode::Pod as i32);
        let target = pid_of("{spec: {containers: []}}", Some("c0ffee"));
        assert_eq!(
            (target.pid, target.target_id.as_str()),
            (cri::NamespaceMode::Target as i32, "c0ffee")
        );
    }

    #[test]
    fn security_contexts_merge_as_the_kubelet_does() {
        let pod: Pod = serde_yaml::from_str(
            "{metadata: {name: p}, spec: {containers: [], securityContext: {runAsUser: 10, \
              supplementalGroups: [5], fsGroup: 6, \
              seccompProfile: {type: Localhost, localhostProfile: profiles/p.json}}}}",
        )
        .unwrap();
        let c: Container = serde_yaml::from_str(
            "{name: a, securityContext: {runAsGroup: 20, allowPrivilegeEscalation: false, \
              readOnlyRootFilesystem: true, capabilities: {drop: [ALL], add: [NET_ADMIN]}}}",
        )
        .unwrap();
        let sc = security_context(&pod, &c, Path::new("/var/lib/node/seccomp"));
        assert_eq!((sc.run_as_user.unwrap().value, sc.run_as_group.unwrap().value), (10, 20));
        assert_eq!(sc.supplemental_groups, [5, 6]);
        assert!(sc.no_new_privs && sc.readonly_rootfs && !sc.privileged);
        let caps = sc.capabilities.unwrap();
        assert_eq!(
            (caps.drop_capabilities, caps.add_capabilities),
            (vec!["ALL".into()], vec!["NET_ADMIN".into()])
        );
        let seccomp = sc.seccomp.unwrap();
        assert_eq!(seccomp.localhost_ref, "/var/lib/node/seccomp/profiles/p.json");
        assert!(sc.masked_paths.contains(&"/proc/kcore".to_string()));

        let privileged: Container =
            serde_yaml::from_str("{name: a, securityContext: {privileged: true}}").unwrap();
        let sc = security_context(&pod, &privileged, Path::new("/s"));
        assert!(sc.privileged && sc.masked_paths.is_empty() && !sc.no_new_privs);
        let climbing: Pod = serde_yaml::from_str(
            "{metadata: {name: p}, spec: {containers: [], \
              securityContext: {seccompProfile: {type: Localhost, localhostProfile: ../etc/x}}}}",
        )
        .unwrap();
        let sc = security_context(&climbing, &privileged, Path::new("/s"));
        assert_eq!(sc.seccomp.unwrap().localhost_ref, "../etc/x", "left for the runtime to refuse");
    }
}
