//! Running one plugin: found by its type in the plugin directories, given its configuration
//! on stdin and the `CNI_*` environment, killed (with whatever it started) when it overruns
//! its time, its result or error read from stdout.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::CniError;
use super::result::PluginError;

/// The plugin operations of the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Del,
    Check,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Add => "ADD",
            Op::Del => "DEL",
            Op::Check => "CHECK",
        }
    }
}

/// What every plugin of one attachment is told through its environment.
#[derive(Debug, Clone)]
pub struct Invocation<'a> {
    pub container_id: &'a str,
    pub netns: &'a Path,
    pub ifname: &'a str,
    /// `CNI_ARGS`: `K=V` pairs separated by `;`.
    pub args: &'a str,
    pub bin_dirs: &'a [PathBuf],
    pub timeout: Duration,
}

/// Output longer than this is cut in messages: plugins are not trusted to be brief.
const SHOWN: usize = 1024;

fn shown(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    match text.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

/// The executable of plugin `plugin` in the first of `dirs` that has it.
pub fn find(plugin: &str, dirs: &[PathBuf]) -> Result<PathBuf, CniError> {
    dirs.iter().map(|d| d.join(plugin)).find(|p| p.is_file()).ok_or_else(|| {
        CniError::PluginNotFound {
            plugin: plugin.to_owned(),
            dirs: dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "),
        }
    })
}

/// Reads all of `r` on a thread of its own (a plugin blocks once a pipe it writes is full).
fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = r.read_to_end(&mut out);
        out
    })
}

/// Runs plugin `plugin` for `op` with `config` on stdin; its stdout on success.
pub fn exec(plugin: &str, op: Op, inv: &Invocation, config: &[u8]) -> Result<Vec<u8>, CniError> {
    let path = find(plugin, inv.bin_dirs)?;
    let cni_path = std::env::join_paths(inv.bin_dirs).map_err(|e| CniError::Exec {
        plugin: plugin.to_owned(),
        op: op.as_str(),
        msg: e.to_string(),
    })?;
    let fail = |msg: String| CniError::Exec { plugin: plugin.to_owned(), op: op.as_str(), msg };
    let mut child = Command::new(&path)
        .env("CNI_COMMAND", op.as_str())
        .env("CNI_CONTAINERID", inv.container_id)
        .env("CNI_NETNS", inv.netns)
        .env("CNI_IFNAME", inv.ifname)
        .env("CNI_ARGS", inv.args)
        .env("CNI_PATH", cni_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: a timeout kills the IPAM plugin it runs too.
        .process_group(0)
        .spawn()
        .map_err(|e| fail(format!("starting {}: {e}", path.display())))?;
    let stdout = child.stdout.take().map(drain);
    let stderr = child.stderr.take().map(drain);
    if let Some(mut stdin) = child.stdin.take() {
        // A plugin that exits without reading shows by its status below.
        let _ = stdin.write_all(config);
    }
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= inv.timeout => {
                // SAFETY: kill has no memory effects; the group is the plugin's own.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                let _ = child.wait();
                return Err(CniError::Timeout {
                    plugin: plugin.to_owned(),
                    op: op.as_str(),
                    secs: inv.timeout.as_secs_f64(),
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => return Err(fail(format!("waiting: {e}"))),
        }
    };
    let out = stdout.and_then(|t| t.join().ok()).unwrap_or_default();
    let err = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    if status.success() {
        if !err.is_empty() {
            tracing::debug!(plugin, op = op.as_str(), stderr = %shown(&err), "CNI plugin");
        }
        return Ok(out);
    }
    let msg = match PluginError::parse(&out) {
        Some(e) => e.to_string(),
        None if !err.iter().all(u8::is_ascii_whitespace) => shown(&err),
        None if !out.is_empty() => shown(&out),
        None => format!("exited with {status}"),
    };
    Err(CniError::Plugin { plugin: plugin.to_owned(), op: op.as_str(), msg })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plugin directory with shell-script plugins.
    fn plugins(scripts: &[(&str, &str)]) -> tempfile::TempDir {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in scripts {
            let p = dir.path().join(name);
            std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        dir
    }

    fn run(dir: &Path, plugin: &str, timeout: Duration) -> Result<Vec<u8>, CniError> {
        let dirs = [PathBuf::from("/nonexistent"), dir.to_owned()];
        let inv = Invocation {
            container_id: "abc",
            netns: Path::new("/run/netns/x"),
            ifname: "eth0",
            args: "K8S_POD_NAME=p",
            bin_dirs: &dirs,
            timeout,
        };
        exec(plugin, Op::Add, &inv, b"{\"in\": 1}")
    }

    #[test]
    fn the_environment_and_stdin_reach_the_plugin() {
        let dir = plugins(&[(
            "echo",
            r#"read -r conf; printf '%s|%s|%s|%s|%s|%s|%s' "$CNI_COMMAND" "$CNI_CONTAINERID" "$CNI_NETNS" "$CNI_IFNAME" "$CNI_ARGS" "$CNI_PATH" "$conf""#,
        )]);
        let out = run(dir.path(), "echo", Duration::from_secs(10)).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                "ADD|abc|/run/netns/x|eth0|K8S_POD_NAME=p|/nonexistent:{}|{{\"in\": 1}}",
                dir.path().display()
            )
        );
    }

    #[test]
    fn failures_name_the_cause() {
        let dir = plugins(&[
            ("json", r#"echo '{"code": 11, "msg": "try again"}'; exit 1"#),
            ("stderr", "echo 'it broke' >&2; exit 2"),
            ("silent", "exit 3"),
            ("slow", "sleep 30"),
        ]);
        let e = |p| run(dir.path(), p, Duration::from_secs(10)).unwrap_err().to_string();
        assert_eq!(e("json"), "CNI plugin json failed ADD: try again [code 11]");
        assert_eq!(e("stderr"), "CNI plugin stderr failed ADD: it broke");
        assert!(e("silent").contains("exit status: 3"), "{}", e("silent"));
        let missing = e("bridge-nope");
        assert!(missing.contains("bridge-nope") && missing.contains("/nonexistent"), "{missing}");
        let started = Instant::now();
        let slow = run(dir.path(), "slow", Duration::from_millis(300)).unwrap_err().to_string();
        assert!(slow.contains("timed out"), "{slow}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
