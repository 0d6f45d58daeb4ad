//! One `ringfence-vmm` process described as data: the machine's [`VmResources`] (written as
//! its config file, the same JSON Firecracker's `--config-file` takes) or the snapshot it is
//! restored from (the body of PUT /snapshot/load), its jail, where its console goes and the
//! network namespace it runs in. [`VmmLaunch::command`] is the only place that turns this
//! into a command line.

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use vmm::resources::VmResources;
use vmm::snapshot::LoadParams;

use crate::cri::handler::Launcher;

/// Firecracker's jailer in short: the VMM alone in a root of its own, as an unprivileged user,
/// under cgroup limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jail {
    pub root: PathBuf,
    pub uid: u32,
    pub gid: u32,
    /// `FILE=VALUE`, e.g. `cpu.max=50000 100000`.
    pub cgroups: Vec<String>,
}

/// How the machine starts.
#[derive(Debug, Clone)]
pub enum Start {
    Boot(VmResources),
    Restore(LoadParams),
}

#[derive(Debug, Clone)]
pub struct VmmLaunch {
    pub vmm: Launcher,
    pub start: Start,
    /// Serve the API at the jail's root (`/api.sock`), to pause and snapshot the machine.
    pub api: bool,
    pub jail: Option<Jail>,
    /// The serial console's output file.
    pub console: PathBuf,
    /// Run in this network namespace (where the machine's taps are).
    pub netns: Option<PathBuf>,
}

impl VmmLaunch {
    /// Writes the config (or restore) file into `dir` and returns the command that runs the
    /// machine.
    pub fn command(&self, dir: &Path) -> std::io::Result<Command> {
        let (flag, file, text) = match &self.start {
            Start::Boot(r) => ("--config-file", dir.join("vm.json"), r.to_json()),
            Start::Restore(p) => (
                "--restore",
                dir.join("restore.json"),
                serde_json::to_string_pretty(p).map_err(std::io::Error::other)?,
            ),
        };
        std::fs::write(&file, text).map_err(|e| {
            std::io::Error::new(e.kind(), format!("writing {}: {e}", file.display()))
        })?;
        let mut cmd = self.vmm.command();
        cmd.arg(flag).arg(&file).arg("--serial").arg(&self.console);
        match (self.api, &self.jail) {
            (true, Some(_)) => cmd.args(["--api-sock", "/api.sock"]),
            (true, None) => cmd.arg("--api-sock").arg(dir.join("api.sock")),
            (false, _) => cmd.arg("--no-api"),
        };
        if let Some(j) = &self.jail {
            cmd.arg("--jail").arg(&j.root).args([
                "--uid",
                &j.uid.to_string(),
                "--gid",
                &j.gid.to_string(),
            ]);
            for c in &j.cgroups {
                cmd.arg("--cgroup").arg(c);
            }
        }
        // Its log (errors) goes next to the console, for the sandbox's error messages.
        cmd.stdout(Stdio::null()).stderr(std::fs::File::create(dir.join("vmm.log"))?);
        if let Some(path) = &self.netns {
            let ns = std::fs::File::open(path).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("the network namespace {}: {e}", path.display()),
                )
            })?;
            // SAFETY: setns between fork and exec on a descriptor opened before the fork; it
            // is async-signal-safe and touches no memory.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        Ok(cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_carries_the_resources_as_a_config_file_and_the_jail() {
        let dir = tempfile::tempdir().unwrap();
        let launch = VmmLaunch {
            vmm: Launcher::new("/usr/bin/ringfence-vmm", &[]),
            start: Start::Boot(VmResources::default()),
            api: false,
            jail: Some(Jail {
                root: dir.path().join("jail"),
                uid: 65534,
                gid: 65534,
                cgroups: vec!["cpu.max=50000 100000".into()],
            }),
            console: dir.path().join("console.log"),
            netns: None,
        };
        let cmd = launch.command(dir.path()).unwrap();
        let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        let at = |flag: &str| args.iter().position(|a| a == flag).map(|i| args[i + 1].clone());
        assert_eq!(at("--config-file"), Some(dir.path().join("vm.json").display().to_string()));
        assert_eq!(at("--uid").as_deref(), Some("65534"));
        assert_eq!(at("--cgroup").as_deref(), Some("cpu.max=50000 100000"));
        assert!(args.contains(&"--no-api".to_owned()));
        let written = std::fs::read_to_string(dir.path().join("vm.json")).unwrap();
        let back: VmResources = serde_json::from_str(&written).unwrap();
        assert!(matches!(launch.start, Start::Boot(r) if r == back));
    }
}
