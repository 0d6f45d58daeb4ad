//! Which PID namespace a container runs in, from its security context's
//! `namespace_options.pid` as the kubelet sends it: CONTAINER (the default, also when nothing
//! is said) gives it its own; POD shares the pod's (`shareProcessNamespace`); TARGET shares
//! another container's (an ephemeral container's `targetContainerName`). NODE is refused: a
//! sandboxed pod never sees the node's processes.

use k8s_cri::v1 as cri;

use super::CriError;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PidNamespace {
    /// Its own: its first process is PID 1 and it sees no other container's processes.
    #[default]
    Container,
    /// The pod's, shared by every container of the pod that asks for it.
    Pod,
    /// The namespace of container `target` (a CRI container id) of the same pod.
    Target(String),
}

/// The PID namespace a container configured with `sc` asks for.
pub fn resolve(sc: Option<&cri::LinuxContainerSecurityContext>) -> Result<PidNamespace, CriError> {
    let Some(ns) = sc.and_then(|s| s.namespace_options.as_ref()) else {
        return Ok(PidNamespace::Container);
    };
    match cri::NamespaceMode::try_from(ns.pid) {
        Ok(cri::NamespaceMode::Container) => Ok(PidNamespace::Container),
        Ok(cri::NamespaceMode::Pod) => Ok(PidNamespace::Pod),
        Ok(cri::NamespaceMode::Target) if ns.target_id.is_empty() => Err(CriError::Invalid(
            "namespace_options.pid is TARGET but names no target_id".into(),
        )),
        Ok(cri::NamespaceMode::Target) => Ok(PidNamespace::Target(ns.target_id.clone())),
        Ok(cri::NamespaceMode::Node) => Err(CriError::Invalid(
            "the node's PID namespace is not available to sandboxed containers (hostPID is refused)"
                .into(),
        )),
        Err(_) => Err(CriError::Invalid(format!("namespace_options.pid: unknown mode {}", ns.pid))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(pid: i32, target_id: &str) -> cri::LinuxContainerSecurityContext {
        cri::LinuxContainerSecurityContext {
            namespace_options: Some(cri::NamespaceOption {
                pid,
                target_id: target_id.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn modes_map_as_the_kubelet_means_them() {
        assert_eq!(resolve(None).unwrap(), PidNamespace::Container, "unset: the kubelet's default");
        let unset = cri::LinuxContainerSecurityContext::default();
        assert_eq!(resolve(Some(&unset)).unwrap(), PidNamespace::Container);
        let mode = |m: cri::NamespaceMode, t: &str| resolve(Some(&context(m as i32, t)));
        assert_eq!(mode(cri::NamespaceMode::Container, "").unwrap(), PidNamespace::Container);
        assert_eq!(mode(cri::NamespaceMode::Pod, "").unwrap(), PidNamespace::Pod);
        assert_eq!(
            mode(cri::NamespaceMode::Target, "abc").unwrap(),
            PidNamespace::Target("abc".into())
        );
        let no_target = mode(cri::NamespaceMode::Target, "").unwrap_err().to_string();
        assert!(no_target.contains("target_id"), "{no_target}");
        let node = mode(cri::NamespaceMode::Node, "").unwrap_err().to_string();
        assert!(node.contains("hostPID"), "{node}");
        assert!(resolve(Some(&context(42, ""))).is_err());
    }
}
