//! Control messages.

use serde::{Deserialize, Serialize};

pub use crate::creds::caps::{CapSet, Capabilities, Capability};
pub use crate::kernel::seccomp::oci::SeccompProfile;

/// What to run: a program, its environment and identity, and the security model its system
/// calls are held to (capabilities, no_new_privs, a seccomp profile), all enforced by the
/// Sentry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    pub argv: Vec<String>,
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default = "root_dir")]
    pub cwd: String,
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
    /// Supplementary group ids.
    #[serde(default)]
    pub groups: Vec<u32>,
    /// The five capability sets, as lists of names (`"CAP_NET_RAW"`), given to the process
    /// before its program is executed: Linux's execve rules then apply (a root process ends
    /// with permitted = effective = bounding | inheritable; any other keeps only its ambient
    /// set). None: root has every capability, other users none.
    #[serde(default)]
    pub capabilities: Option<Capabilities>,
    /// Sets no_new_privs before the program runs.
    #[serde(default)]
    pub no_new_privs: bool,
    /// An OCI seccomp profile (read from the node by the runtime), compiled and installed
    /// before the program runs. None: unconfined.
    #[serde(default)]
    pub seccomp: Option<SeccompProfile>,
    /// Runs on a new pseudo-terminal of this size (its controlling terminal) instead of the
    /// passed descriptors: stdin is typed into it, its output goes to stdout, stderr is unused.
    #[serde(default)]
    pub terminal: Option<TerminalSize>,
}

/// A terminal's window size in characters (0 x 0: unknown, as a new pty has).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalSize {
    pub rows: u16,
    pub cols: u16,
}

fn root_dir() -> String {
    "/".into()
}

/// A file the runtime places in a container's writable layer before it starts (the node's
/// /etc/hostname, /etc/hosts, /etc/resolv.conf).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSpec {
    pub path: String,
    pub contents: String,
    #[serde(default = "file_mode")]
    pub mode: u32,
}

/// A host directory mounted into a container (its Gofer channel travels with the request).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountSpec {
    /// Absolute path inside the container.
    pub destination: String,
    #[serde(default)]
    pub read_only: bool,
}

/// Which PID namespace a container's process starts in (CRI `NamespaceOption.pid`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PidNamespaceMode {
    /// The pod's: every container sees the others' processes (`shareProcessNamespace`).
    #[default]
    Pod,
    /// One of its own, its process being its init (PID 1).
    Container,
    /// The namespace of container `target` (an ephemeral container's target).
    Target(String),
}

fn file_mode() -> u32 {
    0o644
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Starts container `id`. Descriptors: Gofer channel, stdin, stdout, stderr, then one
    /// Gofer channel per mount.
    StartContainer {
        id: String,
        process: Process,
        #[serde(default)]
        files: Vec<FileSpec>,
        #[serde(default)]
        mounts: Vec<MountSpec>,
        /// The root filesystem refuses changes (EROFS); /dev, /dev/shm, /proc and volumes
        /// keep their own mode.
        #[serde(default)]
        readonly_rootfs: bool,
        /// Absolute paths that appear empty: files read as /dev/null, directories as an
        /// empty read-only directory. Missing paths (or ones reached through a symlink) are
        /// skipped.
        #[serde(default)]
        masked_paths: Vec<String>,
        /// Absolute paths made read-only (EROFS on changes), with everything under them.
        #[serde(default)]
        readonly_paths: Vec<String>,
        /// Its PID namespace (the pod's when not given).
        #[serde(default)]
        pid_namespace: PidNamespaceMode,
    },
    /// Runs a process in container `container`'s root and PID namespace. Descriptors: stdin, stdout, stderr.
    Exec {
        container: String,
        process: Process,
    },
    /// Sends a signal to a process (a container's main process is its `pid`).
    Signal {
        pid: i32,
        signal: u32,
    },
    /// Sets the window size of the terminal of a process started with `terminal` (its
    /// foreground process group gets SIGWINCH on a change).
    Resize {
        pid: i32,
        rows: u16,
        cols: u16,
    },
    /// Blocks until the process has exited.
    Wait {
        pid: i32,
    },
    /// CPU and memory use of a container's processes.
    Stats {
        container: String,
    },
    /// Pauses every process of a container: none runs application code until resumed (one
    /// exec'd meanwhile waits too).
    Pause {
        container: String,
    },
    Resume {
        container: String,
    },
    /// Ends the sandbox.
    Shutdown,
}

/// How a process ended, as [`Response::Exited`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    /// The exit code as a shell reports it (128 + signal when killed).
    pub code: i32,
    pub signal: Option<u32>,
    pub oom_killed: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    Started {
        pid: i32,
    },
    /// How a process ended: exit code, or the signal that killed it.
    Exited {
        code: i32,
        signal: Option<u32>,
        /// Killed because the sandbox ran out of memory.
        #[serde(default)]
        oom_killed: bool,
    },
    Stats {
        cpu_us: u64,
        memory_bytes: u64,
        processes: u32,
    },
    Ok,
    Error {
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a runtime sends to start a confined container; omitted fields keep today's
    /// behaviour.
    #[test]
    fn security_fields_have_a_plain_json_form() {
        let json = r#"{
            "op": "start_container", "id": "c1",
            "process": {
                "argv": ["/bin/sh"], "uid": 1000, "gid": 1000, "groups": [5, 27],
                "capabilities": {
                    "bounding": ["CAP_CHOWN", "NET_BIND_SERVICE"],
                    "effective": ["CAP_CHOWN"], "permitted": ["CAP_CHOWN"]
                },
                "no_new_privs": true,
                "seccomp": {"defaultAction": "SCMP_ACT_ALLOW",
                            "syscalls": [{"names": ["sethostname"], "action": "SCMP_ACT_ERRNO"}]}
            },
            "readonly_rootfs": true,
            "masked_paths": ["/proc/kcore"],
            "readonly_paths": ["/proc/sys"]
        }"#;
        let req: Request = serde_json::from_str(json).unwrap();
        let Request::StartContainer { process, readonly_rootfs, masked_paths, .. } = &req else {
            panic!("{req:?}")
        };
        let caps = process.capabilities.unwrap();
        assert!(caps.bounding.has(Capability::NET_BIND_SERVICE));
        assert_eq!(caps.ambient, CapSet::EMPTY);
        assert!(process.no_new_privs && *readonly_rootfs && masked_paths.len() == 1);
        assert!(process.seccomp.as_ref().unwrap().compile().is_ok());
        let again: Request = serde_json::from_str(&serde_json::to_string(&req).unwrap()).unwrap();
        assert_eq!(again, req);

        let old: Request = serde_json::from_str(
            r#"{"op": "exec", "container": "c1", "process": {"argv": ["id"]}}"#,
        )
        .unwrap();
        let Request::Exec { process, .. } = old else { panic!() };
        assert_eq!(
            (process.capabilities, process.seccomp, process.no_new_privs),
            (None, None, false)
        );
        assert_eq!(process.terminal, None);
    }

    /// The three PID namespace choices, and the pod's when a runtime names none.
    #[test]
    fn pid_namespaces_have_a_plain_json_form() {
        let start = |extra: &str| -> PidNamespaceMode {
            let json = format!(
                r#"{{"op": "start_container", "id": "c", "process": {{"argv": ["sh"]}}{extra}}}"#
            );
            match serde_json::from_str(&json).unwrap() {
                Request::StartContainer { pid_namespace, .. } => pid_namespace,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(start(""), PidNamespaceMode::Pod);
        assert_eq!(start(r#", "pid_namespace": "container""#), PidNamespaceMode::Container);
        assert_eq!(
            start(r#", "pid_namespace": {"target": "app"}"#),
            PidNamespaceMode::Target("app".into())
        );
        let json = serde_json::to_string(&PidNamespaceMode::Target("a".into())).unwrap();
        assert_eq!(json, r#"{"target":"a"}"#);
    }

    /// A process on a terminal, and its resizes, as a runtime sends them.
    #[test]
    fn terminals_have_a_plain_json_form() {
        let json = r#"{"op": "exec", "container": "c1",
                       "process": {"argv": ["sh"], "terminal": {"rows": 33, "cols": 101}}}"#;
        let Request::Exec { process, .. } = serde_json::from_str(json).unwrap() else { panic!() };
        assert_eq!(process.terminal, Some(TerminalSize { rows: 33, cols: 101 }));
        let resize: Request =
            serde_json::from_str(r#"{"op": "resize", "pid": 7, "rows": 40, "cols": 120}"#).unwrap();
        assert_eq!(resize, Request::Resize { pid: 7, rows: 40, cols: 120 });
    }
}
