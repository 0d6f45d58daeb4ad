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
    /// Sets the window size of the terminal of a process started with `terminal` (its
    /// foreground process group gets SIGWINCH on a change).
    Resize { pid: i32, rows: u16, cols: u16 },
    /// Blocks until the process has exited.
    Wait { pid: i32 },
    /// CPU and memory use of a container's processes.
    Stats { container: String },
    /// Ends the sandbox.
    Shutdown,
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
