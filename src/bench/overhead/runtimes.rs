//! The host's runtimes: whether each can run here, the command that runs a program in a
//! fresh sandbox of it, and how a long-running sandbox is stopped. Every sandbox gets the same
//! root filesystem, a host directory at /vol when asked, and (where there is one) the pod
//! network. Workload arguments name paths inside the sandbox; a native process gets them
//! rewritten to the host directories they stand for.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::model::RuntimeId;
use super::netns::PodNetwork;

/// What every sandbox of a run shares.
pub struct Host {
    pub dir: PathBuf,
    /// `dir/bundle/rootfs`: the OCI bundle's root as well.
    pub rootfs: PathBuf,
    pub volume: PathBuf,
    pub ringfence: PathBuf,
    pub net: Option<PodNetwork>,
}

/// Why `rt` cannot run on this host, if it cannot (microVMs are judged by their own module).
pub fn unavailable(rt: RuntimeId) -> Option<String> {
    match rt {
        RuntimeId::Native | RuntimeId::Microvm => None,
        RuntimeId::Runc | RuntimeId::Runsc => {
            let tool = rt.id();
            let found = Command::new(tool)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            (!found).then(|| format!("{tool} is not installed (scripts/setup installs it)"))
        }
        RuntimeId::Sentry => kvm_unusable(),
    }
}

/// Why /dev/kvm cannot be used, if it cannot.
pub fn kvm_unusable() -> Option<String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .err()
        .map(|e| format!("/dev/kvm: {e}"))
}

/// A sandbox about to start: its id (for runc and runsc), program and arguments.
pub struct Launch<'a> {
    pub id: String,
    pub args: &'a [String],
    pub volume: bool,
}

impl Host {
    fn bundle(&self) -> PathBuf {
        self.dir.join("bundle")
    }

    fn runsc_root(&self) -> PathBuf {
        self.dir.join("runsc-state")
    }

    /// The command that runs `l` in a fresh sandbox of `rt` (not microVMs).
    pub fn command(&self, rt: RuntimeId, l: &Launch) -> anyhow::Result<Command> {
        Ok(match rt {
            RuntimeId::Native => {
                let mut args = l.args.iter().map(|a| self.native_path(a));
                let mut c = Command::new(args.next().unwrap_or_default());
                c.args(args);
                c
            }
            RuntimeId::Sentry => {
                let mut c = Command::new(&self.ringfence);
                c.args(["sentry", "run", "--rootfs"]).arg(&self.rootfs);
                if l.volume {
                    c.arg("--volume").arg(format!("{}:/vol", self.volume.display()));
                }
                if let Some(net) = &self.net {
                    c.arg("--network").arg(net.path());
                }
                c.arg("--").args(l.args);
                c
            }
            RuntimeId::Runc => {
                self.write_config(l)?;
                let mut c = Command::new("runc");
                c.args(["run", "-b"]).arg(self.bundle()).arg(&l.id);
                c
            }
            RuntimeId::Runsc => {
                self.write_config(l)?;
                // Debian's runsc (2022-12) cannot start its own network stack on kernels from
                // 6.11 on (it takes every namespace for the host's: gVisor issue 10704), so it
                // runs inside the pod network with host networking (its syscalls go to the
                // pod's namespace), as `--network=host` users of gVisor do.
                let mut c = self.runsc();
                let network = if self.net.is_some() { "host" } else { "none" };
                c.args(["--platform=ptrace", &format!("--network={network}"), "--root"])
                    .arg(self.runsc_root())
                    .args(["run", "-bundle"])
                    .arg(self.bundle())
                    .arg(&l.id);
                c
            }
            RuntimeId::Microvm => anyhow::bail!("microVMs run through their own module"),
        })
    }

    /// `runsc`, inside the pod network when there is one: there it runs its sandboxes, and
    /// there (an abstract socket is its network namespace's) `kill` and `delete` find them.
    fn runsc(&self) -> Command {
        match &self.net {
            Some(net) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", net.path().display())).arg("runsc");
                c
            }
            None => Command::new("runsc"),
        }
    }

    /// A sandbox path as the host sees it: /vol is the volume, the rest is in the rootfs.
    fn native_path(&self, arg: &str) -> String {
        if let Some(rest) = arg.strip_prefix("/vol") {
            format!("{}{rest}", self.volume.display())
        } else if arg.starts_with('/') {
            format!("{}{arg}", self.rootfs.display())
        } else {
            arg.to_owned()
        }
    }

    fn write_config(&self, l: &Launch) -> anyhow::Result<()> {
        let mut mounts = vec![
            serde_json::json!({"destination": "/proc", "type": "proc", "source": "proc"}),
            serde_json::json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]}),
            serde_json::json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}),
        ];
        if l.volume {
            mounts.push(serde_json::json!({
                "destination": "/vol", "type": "bind", "source": self.volume, "options": ["rbind", "rw"]
            }));
        }
        let network = match &self.net {
            Some(net) => serde_json::json!({"type": "network", "path": net.path()}),
            None => serde_json::json!({"type": "network"}),
        };
        let config = serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {
                "terminal": false,
                "user": {"uid": 0, "gid": 0},
                "args": l.args,
                "env": ["PATH=/bin:/usr/bin"],
                "cwd": "/",
                "noNewPrivileges": true
            },
            "root": {"path": "rootfs", "readonly": false},
            "hostname": "bench",
            "mounts": mounts,
            "linux": {
                "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, network]
            }
        });
        // The rootfs is the bundle's `rootfs` directory (see `Host`).
        std::fs::write(self.bundle().join("config.json"), serde_json::to_vec_pretty(&config)?)?;
        Ok(())
    }

    /// Ends a long-running sandbox started with `id` as `child`.
    pub fn stop(&self, rt: RuntimeId, id: &str, child: &mut Child) {
        let tool = |args: &[&str]| {
            let mut c = if rt == RuntimeId::Runsc { self.runsc() } else { Command::new("runc") };
            if rt == RuntimeId::Runsc {
                c.arg("--root").arg(self.runsc_root());
            }
            let _ = c.args(args).stdout(Stdio::null()).stderr(Stdio::null()).status();
        };
        match rt {
            RuntimeId::Runc | RuntimeId::Runsc => {
                // The container's init ignores SIGTERM (it is PID 1 with no handler).
                tool(&["kill", id, "KILL"]);
                if !wait_for(child, std::time::Duration::from_secs(10)) {
                    tracing::warn!("{} {id} still running 10 s after its kill; ending it", rt.id());
                    let _ = child.kill();
                    let _ = child.wait();
                }
                let force = if rt == RuntimeId::Runc { "-f" } else { "-force" };
                tool(&["delete", force, id]);
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Waits for `child` to end, up to `limit`; false if it is still running.
pub fn wait_for(child: &mut Child, limit: std::time::Duration) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    false
}
