//! Control messages.

use serde::{Deserialize, Serialize};

/// What to run: a program, its environment and identity.
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
    },
    /// Runs a process in container `container`'s root. Descriptors: stdin, stdout, stderr.
    Exec { container: String, process: Process },
    /// Sends a signal to a process (a container's main process is its `pid`).
    Signal { pid: i32, signal: u32 },
    /// Blocks until the process has exited.
    Wait { pid: i32 },
    /// CPU and memory use of a container's processes.
    Stats { container: String },
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
