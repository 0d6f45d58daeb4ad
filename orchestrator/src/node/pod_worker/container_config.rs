//! The runtime's configuration of one container run: image, command and args with `$(VAR)`
//! expanded, environment, mounts, labels, log path (one file per run) and user. Pure.

use std::collections::HashMap;

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{Container, Pod};

use super::{labels, spec};
use crate::node::env;

/// The log file of run `attempt` of container `name`, relative to the sandbox's log directory.
pub fn log_path(name: &str, attempt: u32) -> String {
    format!("{name}/{attempt}.log")
}

/// The configuration of run `attempt` of `c`, with its environment and mounts.
pub fn container_config(
    pod: &Pod,
    uid: &str,
    c: &Container,
    attempt: u32,
    vars: Vec<(String, String)>,
    mounts: Vec<cri::Mount>,
) -> cri::ContainerConfig {
    let var_map: HashMap<String, String> = vars.iter().cloned().collect();
    let expand = |v: &Option<Vec<String>>| -> Vec<String> {
        v.iter().flatten().map(|s| env::expand(s, &var_map)).collect()
    };
    let sc = c.security_context.as_ref();
    let id = |v: Option<i64>| v.map(|value| cri::Int64Value { value });
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
                run_as_user: id(sc.and_then(|s| s.run_as_user)),
                run_as_group: id(sc.and_then(|s| s.run_as_group)),
                ..Default::default()
            }),
            ..Default::default()
        }),
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
        let cfg = container_config(&pod, "uid-1", &c, 3, vars, Vec::new());
        assert_eq!(cfg.command, ["sh", "-c", "echo hi"]);
        assert_eq!(cfg.args, ["$(NOPE)"]);
        assert_eq!(cfg.log_path, "web/3.log");
        assert_eq!(cfg.labels[labels::LABEL_CONTAINER], "web");
        assert_eq!(cfg.labels[labels::LABEL_POD_UID], "uid-1");
        let user = cfg.linux.unwrap().security_context.unwrap().run_as_user.unwrap();
        assert_eq!(user.value, 1000);
    }
}
