//! The OCI bundle containerd hands the shim: the parts of `config.json` a Sentry sandbox
//! honours, translated into the CRI layer's specs (processes, files, mounts).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use orchestrator::cri::handler::{
    FileSpec, MountSpec, PidNamespace, ProcessSecurity, ProcessSpec, RootfsPolicy, TerminalSize,
};
use sentry_kvm::creds::caps::{CapSet, Capability};
use sentry_kvm::kernel::seccomp::oci::SeccompProfile;
use serde::Deserialize;

use super::error::ShimError;

/// Annotation of containerd's CRI plugin: `sandbox` or `container`.
const CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
/// Annotation of containerd's CRI plugin: the pod sandbox a container belongs to.
const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";
/// Files bind-mounted from the host are copied in up to this size (hosts, resolv.conf...).
const MAX_COPIED_FILE: u64 = 1 << 20;

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct OciSpec {
    pub process: Option<OciProcess>,
    pub root: Option<OciRoot>,
    pub hostname: String,
    pub mounts: Vec<OciMount>,
    pub annotations: HashMap<String, String>,
    pub linux: Option<OciLinux>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct OciProcess {
    pub terminal: bool,
    pub user: OciUser,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub capabilities: Option<OciCapabilities>,
    pub no_new_privileges: bool,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct OciUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct OciCapabilities {
    pub bounding: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct OciRoot {
    pub path: String,
    pub readonly: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct OciMount {
    pub destination: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub source: String,
    pub options: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct OciLinux {
    pub namespaces: Vec<OciNamespace>,
    pub resources: Option<OciResources>,
    pub seccomp: Option<serde_json::Value>,
    pub masked_paths: Vec<String>,
    pub readonly_paths: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct OciResources {
    pub memory: Option<OciMemory>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct OciMemory {
    /// Bytes; containerd writes no limit as absent or a non-positive number.
    pub limit: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct OciNamespace {
    #[serde(rename = "type")]
    pub kind: String,
    pub path: String,
}

/// What a task is to containerd's CRI plugin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// A container of its own (`ctr run`): a Sentry sandbox just for it.
    Standalone,
    /// A pod's sandbox ("pause") container: the pod's Sentry sandbox; no process of its own.
    PodSandbox,
    /// A container of the pod sandbox with this id: runs in that pod's Sentry.
    PodContainer { sandbox_id: String },
}

impl OciSpec {
    pub fn load(bundle: &Path) -> Result<OciSpec, ShimError> {
        let path = bundle.join("config.json");
        let text = std::fs::read(&path)
            .map_err(|e| ShimError::Invalid(format!("{}: {e}", path.display())))?;
        serde_json::from_slice(&text)
            .map_err(|e| ShimError::Invalid(format!("{}: {e}", path.display())))
    }

    pub fn role(&self) -> Role {
        match (
            self.annotations.get(CONTAINER_TYPE).map(String::as_str),
            self.annotations.get(SANDBOX_ID),
        ) {
            (Some("sandbox"), _) => Role::PodSandbox,
            (Some("container"), Some(id)) => Role::PodContainer { sandbox_id: id.clone() },
            _ => Role::Standalone,
        }
    }

    /// The id that groups this task's shim with others: one shim (and one Sentry) per pod.
    pub fn group(&self, id: &str) -> String {
        match self.role() {
            Role::PodContainer { sandbox_id } => sandbox_id,
            Role::PodSandbox | Role::Standalone => id.to_owned(),
        }
    }

    /// The network namespace to join, when the spec names one (a pod's, made by CNI).
    /// Without one the sandbox gets its own loopback-only network.
    pub fn netns(&self) -> Option<PathBuf> {
        self.linux
            .as_ref()?
            .namespaces
            .iter()
            .find(|n| n.kind == "network" && !n.path.is_empty())
            .map(|n| PathBuf::from(&n.path))
    }

    /// The PID namespace the container's process starts in. containerd's CRI plugin asks
    /// for a new one (a `pid` namespace without a path) in CONTAINER mode and names the
    /// sandbox's with a path in POD mode; without a `pid` entry the container shares its
    /// runtime's, which here is the pod's. TARGET mode names the target's process, which for
    /// this shim is the same Sentry as the pod's: it gets the pod's namespace too.
    pub fn pid_namespace(&self) -> PidNamespace {
        let pid = self.linux.as_ref().and_then(|l| l.namespaces.iter().find(|n| n.kind == "pid"));
        match pid {
            Some(n) if n.path.is_empty() => PidNamespace::Container,
            _ => PidNamespace::Pod,
        }
    }

    /// The container's memory limit in bytes, when it has one.
    pub fn memory_limit(&self) -> Option<u64> {
        let limit = self.linux.as_ref()?.resources.as_ref()?.memory.as_ref()?.limit?;
        u64::try_from(limit).ok().filter(|l| *l > 0)
    }

    /// The root filesystem directory containerd prepared (relative paths are in the bundle).
    pub fn rootfs(&self, bundle: &Path) -> PathBuf {
        let path = self.root.as_ref().map(|r| r.path.as_str()).unwrap_or("rootfs");
        bundle.join(if path.is_empty() { "rootfs" } else { path })
    }

    pub fn rootfs_policy(&self) -> RootfsPolicy {
        let linux = self.linux.as_ref();
        RootfsPolicy {
            readonly_rootfs: self.root.as_ref().is_some_and(|r| r.readonly),
            masked_paths: linux.map(|l| l.masked_paths.clone()).unwrap_or_default(),
            readonly_paths: linux.map(|l| l.readonly_paths.clone()).unwrap_or_default(),
        }
    }

    /// The container's main process.
    pub fn process(&self, terminal: bool) -> Result<ProcessSpec, ShimError> {
        let p = self
            .process
            .as_ref()
            .ok_or_else(|| ShimError::Invalid("config.json has no process".into()))?;
        let seccomp = match self.linux.as_ref().and_then(|l| l.seccomp.clone()) {
            None => None,
            Some(value) => Some(seccomp_profile(value)?),
        };
        process_spec(p, terminal, seccomp)
    }

    /// Host files and directories bind-mounted into the container: directories are served by
    /// a Gofer, small files are copied into the container's writable layer (a copy: later
    /// changes on the host are not seen). Kernel filesystems are the Sentry's own.
    pub fn binds(&self) -> (Vec<MountSpec>, Vec<FileSpec>) {
        let mut mounts = Vec::new();
        let mut files = Vec::new();
        for m in &self.mounts {
            let dest = m.destination.as_str();
            if m.kind != "bind" && !m.options.iter().any(|o| o == "bind" || o == "rbind") {
                continue;
            }
            if !dest.starts_with('/') || ["/proc", "/sys", "/dev"].iter().any(|p| under(dest, p)) {
                continue;
            }
            let read_only = m.options.iter().any(|o| o == "ro");
            let source = Path::new(&m.source);
            match std::fs::metadata(source) {
                Ok(md) if md.is_dir() => mounts.push(MountSpec {
                    host: source.to_owned(),
                    destination: dest.to_owned(),
                    read_only,
                }),
                Ok(md) if md.is_file() && md.len() <= MAX_COPIED_FILE => {
                    match std::fs::read_to_string(source) {
                        Ok(contents) => {
                            files.push(FileSpec { path: dest.to_owned(), contents, mode: 0o644 })
                        }
                        Err(e) => tracing::warn!("bind mount {}: {e}; skipped", m.source),
                    }
                }
                Ok(_) => tracing::warn!("bind mount {}: not a directory or small file", m.source),
                Err(e) => tracing::warn!("bind mount {}: {e}; skipped", m.source),
            }
        }
        (mounts, files)
    }
}

fn under(path: &str, dir: &str) -> bool {
    path == dir || path.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/'))
}

fn seccomp_profile(value: serde_json::Value) -> Result<SeccompProfile, ShimError> {
    let profile: SeccompProfile = serde_json::from_value(value)
        .map_err(|e| ShimError::Invalid(format!("linux.seccomp: {e}")))?;
    profile.compile().map_err(|e| ShimError::Invalid(format!("linux.seccomp: {e}")))?;
    Ok(profile)
}

/// A process of the OCI runtime spec as the Sentry runs it.
pub fn process_spec(
    p: &OciProcess,
    terminal: bool,
    seccomp: Option<SeccompProfile>,
) -> Result<ProcessSpec, ShimError> {
    if p.args.is_empty() {
        return Err(ShimError::Invalid("the process has no args".into()));
    }
    // Capabilities the Sentry does not know grant nothing there; they are left out.
    let capabilities = p.capabilities.as_ref().map(|c| {
        let mut set = CapSet::EMPTY;
        for cap in c.bounding.iter().filter_map(|n| n.parse::<Capability>().ok()) {
            set.add(cap);
        }
        set
    });
    Ok(ProcessSpec {
        argv: p.args.clone(),
        env: p.env.clone(),
        cwd: if p.cwd.is_empty() { "/".into() } else { p.cwd.clone() },
        uid: p.user.uid,
        gid: p.user.gid,
        groups: p.user.additional_gids.clone(),
        security: ProcessSecurity {
            capabilities: Some(capabilities.unwrap_or(CapSet::EMPTY)),
            no_new_privs: p.no_new_privileges,
            seccomp,
        },
        terminal: (terminal || p.terminal).then_some(TerminalSize::default()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> OciSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn roles_from_cri_annotations() {
        assert_eq!(spec("{}").role(), Role::Standalone);
        let s = spec(
            r#"{"annotations":{"io.kubernetes.cri.container-type":"sandbox",
            "io.kubernetes.cri.sandbox-id":"p1"}}"#,
        );
        assert_eq!((s.role(), s.group("p1")), (Role::PodSandbox, "p1".into()));
        let c = spec(
            r#"{"annotations":{"io.kubernetes.cri.container-type":"container",
            "io.kubernetes.cri.sandbox-id":"p1"}}"#,
        );
        assert_eq!(c.role(), Role::PodContainer { sandbox_id: "p1".into() });
        assert_eq!(c.group("c1"), "p1");
    }

    #[test]
    fn process_and_network() {
        let s = spec(
            r#"{"process":{"args":["sh","-c","true"],"env":["A=1"],"cwd":"",
                "user":{"uid":1000,"gid":100,"additionalGids":[10]},
                "capabilities":{"bounding":["CAP_CHOWN","CAP_NOT_A_CAP"]},
                "noNewPrivileges":true},
              "root":{"path":"rootfs","readonly":true},
              "linux":{"namespaces":[{"type":"pid"},{"type":"network","path":"/run/netns/x"}],
                "maskedPaths":["/proc/kcore"]}}"#,
        );
        let p = s.process(false).unwrap();
        assert_eq!((p.argv.len(), p.cwd.as_str(), p.uid, p.gid), (3, "/", 1000, 100));
        assert_eq!(p.groups, vec![10]);
        assert!(p.security.no_new_privs && p.terminal.is_none());
        let caps = p.security.capabilities.unwrap();
        assert!(caps.has(Capability::CHOWN) && !caps.has(Capability::SYS_ADMIN));
        assert_eq!(s.netns(), Some(PathBuf::from("/run/netns/x")));
        assert!(s.rootfs_policy().readonly_rootfs);
        assert_eq!(s.rootfs(Path::new("/b")), PathBuf::from("/b/rootfs"));
        assert!(spec(r#"{"process":{"args":[]}}"#).process(false).is_err());
        assert!(spec("{}").netns().is_none());
        // containerd's CRI plugin: a new PID namespace in CONTAINER mode, the sandbox's (a
        // path) in POD mode; none named: the runtime's, the pod's here.
        assert_eq!(s.pid_namespace(), PidNamespace::Container);
        let pod = spec(r#"{"linux":{"namespaces":[{"type":"pid","path":"/proc/7/ns/pid"}]}}"#);
        assert_eq!(pod.pid_namespace(), PidNamespace::Pod);
        assert_eq!(spec("{}").pid_namespace(), PidNamespace::Pod);
        let limited = spec(r#"{"linux":{"resources":{"memory":{"limit":134217728}}}}"#);
        assert_eq!(limited.memory_limit(), Some(128 << 20));
        let unlimited = spec(r#"{"linux":{"resources":{"memory":{"limit":-1}}}}"#);
        assert_eq!((unlimited.memory_limit(), s.memory_limit()), (None, None));
    }

    #[test]
    fn binds_keep_host_dirs_and_small_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hosts");
        std::fs::write(&file, "127.0.0.1 localhost\n").unwrap();
        let json = serde_json::json!({"mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/data", "type": "bind", "source": dir.path(), "options": ["rbind", "ro"]},
            {"destination": "/etc/hosts", "type": "bind", "source": file, "options": ["rbind"]},
            {"destination": "/dev/termination-log", "type": "bind", "source": file},
        ]});
        let (mounts, files) = serde_json::from_value::<OciSpec>(json).unwrap().binds();
        assert_eq!(mounts.len(), 1);
        assert!(mounts[0].read_only && mounts[0].destination == "/data");
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].contents, "127.0.0.1 localhost\n");
    }
}
