//! A container's security context as the runtime enforces it: capabilities after the pod's
//! add/drop, no_new_privs, the seccomp profile (RuntimeDefault, a node file for Localhost, or
//! none) and what its root filesystem hides or keeps read-only.
//!
//! `privileged` grants everything *inside the sandbox*: every capability, no seccomp filter,
//! nothing masked. It never grants anything on the node: the sandbox (the Sentry or the
//! microVM) is still the boundary, and no host device or namespace is handed in.

use std::io::Read;

use k8s_cri::v1 as cri;
use sentry_kvm::creds::caps::{CapSet, Capabilities, Capability};
use sentry_kvm::kernel::seccomp::oci::SeccompProfile;
use sentry_kvm::kernel::seccomp::runtime_default;

use super::CriError;

/// Larger profile files are refused.
const MAX_PROFILE: u64 = 1 << 20;

/// What a process may do beyond its user's permissions.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProcessSecurity {
    /// The capabilities it may hold; `None`: every one (a privileged container).
    pub capabilities: Option<CapSet>,
    pub no_new_privs: bool,
    /// The system-call filter; `None`: unconfined.
    pub seccomp: Option<SeccompProfile>,
}

/// What a container's root filesystem hides or keeps read-only.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RootfsPolicy {
    pub readonly_rootfs: bool,
    pub masked_paths: Vec<String>,
    pub readonly_paths: Vec<String>,
}

/// The security of a container configured with `sc`.
pub fn resolve(
    sc: Option<&cri::LinuxContainerSecurityContext>,
) -> Result<(ProcessSecurity, RootfsPolicy), CriError> {
    let Some(sc) = sc else {
        let defaults = Capabilities::container_default().bounding;
        return Ok((
            ProcessSecurity { capabilities: Some(defaults), ..Default::default() },
            RootfsPolicy::default(),
        ));
    };
    if sc.privileged {
        let rootfs = RootfsPolicy { readonly_rootfs: sc.readonly_rootfs, ..Default::default() };
        return Ok((ProcessSecurity::default(), rootfs));
    }
    let mut caps = Capabilities::container_default().bounding;
    if let Some(c) = &sc.capabilities {
        for name in &c.drop_capabilities {
            match parse_caps(name)? {
                None => caps = CapSet::EMPTY,
                Some(one) => caps.remove(one),
            }
        }
        for name in &c.add_capabilities {
            match parse_caps(name)? {
                None => caps = CapSet::FULL,
                Some(one) => caps.add(one),
            }
        }
    }
    let seccomp = match &sc.seccomp {
        Some(p) if p.profile_type == cri::security_profile::ProfileType::RuntimeDefault as i32 => {
            Some(runtime_default::profile())
        }
        Some(p) if p.profile_type == cri::security_profile::ProfileType::Localhost as i32 => {
            Some(localhost_profile(&p.localhost_ref)?)
        }
        _ => None,
    };
    Ok((
        ProcessSecurity { capabilities: Some(caps), no_new_privs: sc.no_new_privs, seccomp },
        RootfsPolicy {
            readonly_rootfs: sc.readonly_rootfs,
            masked_paths: sc.masked_paths.clone(),
            readonly_paths: sc.readonly_paths.clone(),
        },
    ))
}

/// One capability by name (with or without `CAP_`), or `None` for `ALL`.
fn parse_caps(name: &str) -> Result<Option<Capability>, CriError> {
    if name.eq_ignore_ascii_case("ALL") {
        return Ok(None);
    }
    name.parse::<Capability>()
        .map(Some)
        .map_err(|_| CriError::Invalid(format!("unknown capability {name:?}")))
}

/// An OCI seccomp profile from the node's file at `path`, checked to compile.
fn localhost_profile(path: &str) -> Result<SeccompProfile, CriError> {
    if !path.starts_with('/') {
        return Err(CriError::Invalid(format!(
            "Localhost seccomp profile {path:?} must be an absolute path on the node"
        )));
    }
    let file = std::fs::File::open(path)
        .map_err(|e| CriError::Invalid(format!("seccomp profile {path}: {e}")))?;
    let mut text = String::new();
    file.take(MAX_PROFILE)
        .read_to_string(&mut text)
        .map_err(|e| CriError::Invalid(format!("seccomp profile {path}: {e}")))?;
    let profile: SeccompProfile = serde_json::from_str(&text)
        .map_err(|e| CriError::Invalid(format!("seccomp profile {path}: {e}")))?;
    profile.compile().map_err(|e| CriError::Invalid(format!("seccomp profile {path}: {e}")))?;
    Ok(profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(
        f: impl FnOnce(&mut cri::LinuxContainerSecurityContext),
    ) -> cri::LinuxContainerSecurityContext {
        let mut c = cri::LinuxContainerSecurityContext::default();
        f(&mut c);
        c
    }

    fn caps(add: &[&str], drop: &[&str]) -> Option<cri::Capability> {
        Some(cri::Capability {
            add_capabilities: add.iter().map(|s| s.to_string()).collect(),
            drop_capabilities: drop.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
    }

    #[test]
    fn capabilities_start_from_the_container_default() {
        let default = Capabilities::container_default().bounding;
        let (s, _) = resolve(None).unwrap();
        assert_eq!(s.capabilities, Some(default));
        let (s, _) =
            resolve(Some(&ctx(|c| c.capabilities = caps(&["NET_ADMIN"], &["CAP_NET_RAW"]))))
                .unwrap();
        let set = s.capabilities.unwrap();
        let cap = |n: &str| n.parse::<Capability>().unwrap();
        assert!(set.has(cap("NET_ADMIN")) && !set.has(cap("NET_RAW")) && set.has(cap("KILL")));
        let (s, _) = resolve(Some(&ctx(|c| c.capabilities = caps(&["CHOWN"], &["ALL"])))).unwrap();
        assert_eq!(s.capabilities.unwrap().iter().collect::<Vec<_>>(), [Capability::CHOWN]);
        let (s, _) = resolve(Some(&ctx(|c| c.capabilities = caps(&["ALL"], &[])))).unwrap();
        assert_eq!(s.capabilities.unwrap(), CapSet::FULL);
        assert!(resolve(Some(&ctx(|c| c.capabilities = caps(&["NOPE"], &[])))).is_err());
        let (s, r) = resolve(Some(&ctx(|c| {
            c.privileged = true;
            c.masked_paths = vec!["/proc/kcore".into()];
        })))
        .unwrap();
        assert_eq!((s, r), (ProcessSecurity::default(), RootfsPolicy::default()));
    }

    #[test]
    fn seccomp_profiles_are_read_and_checked() {
        let runtime_default = cri::SecurityProfile {
            profile_type: cri::security_profile::ProfileType::RuntimeDefault as i32,
            ..Default::default()
        };
        let (s, _) = resolve(Some(&ctx(|c| c.seccomp = Some(runtime_default)))).unwrap();
        assert!(s.seccomp.is_some());
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.json");
        std::fs::write(&good, r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["sethostname"], "action": "SCMP_ACT_ERRNO"}]}"#).unwrap();
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, r#"{"defaultAction": "SCMP_ACT_SOMETIMES"}"#).unwrap();
        let localhost = |path: &str| {
            ctx(|c| {
                c.seccomp = Some(cri::SecurityProfile {
                    profile_type: cri::security_profile::ProfileType::Localhost as i32,
                    localhost_ref: path.into(),
                })
            })
        };
        assert!(resolve(Some(&localhost(good.to_str().unwrap()))).unwrap().0.seccomp.is_some());
        for path in [bad.to_str().unwrap(), "/no/such/profile.json", "relative.json"] {
            assert!(resolve(Some(&localhost(path))).is_err(), "{path}");
        }
    }
}
