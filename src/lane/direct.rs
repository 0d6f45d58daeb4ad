//! The direct transport: the same run on this host's own `/dev/kvm`, for hosts whose KVM is
//! hardware-backed. The run gets private mount and network namespaces whose root shows the
//! host's directories plus the run's own (`/lane`, `/guest`, ...) and an empty `/tmp`, with
//! busybox's applets first on `PATH`, as in the outer VM; so the same scripts and arguments
//! work unchanged.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::initramfs::{BUSYBOX, command};
use super::{Outcome, Run};

/// Host directories the run's root does not show: its own `/tmp`, and what it brings.
const NOT_SHARED: [&str; 2] = ["tmp", "lane"];

/// Runs `run` on this host's KVM and returns its outcome, as the nested lane would.
pub fn execute(run: &Run) -> anyhow::Result<Outcome> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .context("the direct lane runs on this host's /dev/kvm, which cannot be opened")?;
    let staging = tempfile::Builder::new().prefix("ringfence-direct-").tempdir()?;
    let root = staging.path();
    let binds = share_host_root(root, &run.files)?;
    stage(root, run)?;
    let console = root.join("lane/console.log");
    std::fs::write(&console, b"")?;
    let output_path = root.join("lane/output");
    let output = std::fs::File::create(&output_path)?;

    let mut cmd = Command::new(BUSYBOX);
    cmd.args(["sh", "/lane/direct.sh"])
        .env("PATH", "/lane/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(output.try_clone()?)
        .stderr(output);
    let setup = Setup::new(root, &binds, &console)?;
    // SAFETY: the closure runs in the forked child before exec; it makes system calls on C
    // strings prepared before the fork, and neither allocates nor takes locks.
    unsafe { cmd.pre_exec(move || setup.enter()) };
    let start = Instant::now();
    let mut child = cmd.spawn().context("starting the run (busybox-static)")?;
    let pgid = child.id() as libc::pid_t;
    // Its network, as QEMU's user-mode network gives the nested lane one (the run waits).
    let _network = if run.forwards.is_empty() {
        None
    } else {
        match super::direct_net::RunNetwork::plumb(child.id(), &run.forwards, &run.host_ports) {
            Ok(n) => Some(n),
            Err(e) => {
                kill_group(pgid);
                let _ = child.wait();
                return Err(e.context("giving the direct run its network"));
            }
        }
    };
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if start.elapsed() > run.timeout {
            kill_group(pgid);
            let _ = child.wait();
            bail!(
                "the run did not end within {:?}; its last output:\n{}",
                run.timeout,
                tail(&std::fs::read_to_string(&output_path).unwrap_or_default())
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let ran = start.elapsed();
    // What the run left in the background ends with it, as it would with the outer VM.
    kill_group(pgid);
    let console = std::fs::read_to_string(&console).unwrap_or_default();
    if !console.is_empty() {
        eprint!("{console}");
    }
    let mut sums = Vec::new();
    for p in &run.sums {
        sums.push((p.clone(), sha256(&root.join(p.trim_start_matches('/')))?));
    }
    Ok(Outcome {
        exit_code: status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
        output: String::from_utf8_lossy(&std::fs::read(&output_path)?).into_owned(),
        outer_ready_s: 0.0,
        vmm_s: ran.as_secs_f64(),
        total: ran,
        sums,
    })
}

/// Mirrors the host's root into `root`: symbolic links as they are, directories as mount
/// points to bind the host's onto (returned as (host, mount point) pairs). A directory a file
/// of the run goes into must be the run's own: the host's stays untouched.
fn share_host_root(
    root: &Path,
    files: &[(PathBuf, String)],
) -> anyhow::Result<Vec<(PathBuf, PathBuf)>> {
    let mut binds = Vec::new();
    for entry in std::fs::read_dir("/")? {
        let entry = entry?;
        let name = entry.file_name();
        let here = root.join(&name);
        let kind = entry.file_type()?;
        if NOT_SHARED.iter().any(|n| name.as_bytes() == n.as_bytes()) {
            continue;
        }
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path())?, &here)?;
        } else if kind.is_dir() {
            if let Some((_, inside)) = files.iter().find(|(host, inside)| {
                top(inside) == Some(name.as_bytes()) && host.as_path() != Path::new(inside)
            }) {
                bail!(
                    "{inside}: the direct lane keeps the host's /{} as it is; put the run's files \
                     in directories the host does not have (e.g. /guest)",
                    name.to_string_lossy()
                );
            }
            std::fs::create_dir(&here)?;
            binds.push((entry.path(), here));
        }
    }
    Ok(binds)
}

/// The first component of an absolute path.
fn top(path: &str) -> Option<&[u8]> {
    path.trim_start_matches('/').split('/').next().map(str::as_bytes)
}

/// The run's own files: `/tmp`, `/lane` (the binaries, busybox's applets, the script, the
/// wrapper that runs it) and the files it was given, copied (a run may write to them).
fn stage(root: &Path, run: &Run) -> anyhow::Result<()> {
    let mkdir = |p: &Path, mode: u32| -> anyhow::Result<()> {
        std::fs::create_dir_all(p)?;
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        Ok(())
    };
    mkdir(&root.join("tmp"), 0o1777)?;
    mkdir(&root.join("lane/bin"), 0o755)?;
    link_or_copy(&run.vmm, &root.join("lane/ringfence-vmm"))?;
    if let Some(r) = &run.ringfence {
        link_or_copy(r, &root.join("lane/ringfence"))?;
    }
    let applets = Command::new(BUSYBOX).arg("--list").output().context("busybox --list")?;
    for applet in String::from_utf8_lossy(&applets.stdout).lines() {
        std::os::unix::fs::symlink(BUSYBOX, root.join("lane/bin").join(applet))?;
    }
    for (host, inside) in &run.files {
        if !inside.starts_with('/') || inside.contains("..") {
            bail!("{inside:?}: paths inside the lane are absolute and plain");
        }
        if host.as_path() == Path::new(inside) {
            continue; // the host's own file, seen through its directory
        }
        let at = root.join(inside.trim_start_matches('/'));
        if let Some(dir) = at.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // What is there (a busybox applet's link into the host's root) is replaced, never
        // written through.
        let _ = std::fs::remove_file(&at);
        std::fs::copy(host, &at)
            .with_context(|| format!("copying {} to {inside}", host.display()))?;
        std::fs::set_permissions(&at, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    }
    if let Some(script) = &run.script {
        std::fs::write(root.join("lane/run.sh"), script)?;
    }
    // The root's /bin/sh is the host's: the script gets busybox's, as in the outer VM.
    let script_runner = format!("{BUSYBOX} sh /lane/run.sh");
    let program = command(
        run.ringfence.is_some(),
        &run.args,
        run.script.as_ref().map(|_| script_runner.as_str()),
    );
    std::fs::write(
        root.join("lane/direct.sh"),
        format!(
            "ip link set lo up 2>/dev/null\n\
             {wait}\
             if [ -x /lane/before.sh ]; then /lane/before.sh & fi\n\
             {program}\n",
            // A run with a network starts once the host has given it its interface.
            wait = if run.forwards.is_empty() {
                ""
            } else {
                "while ! ip route | grep -q default; do sleep 0.05; done\n"
            },
        ),
    )?;
    Ok(())
}

/// A hard link where the file system allows one (our binaries are large), else a copy.
fn link_or_copy(from: &Path, to: &Path) -> anyhow::Result<()> {
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).with_context(|| format!("copying {}", from.display()))?;
    }
    Ok(())
}

/// What the child does between fork and exec, with every string prepared beforehand.
struct Setup {
    root: CString,
    binds: Vec<(CString, CString)>,
    console: (CString, CString),
}

fn c(path: &Path) -> anyhow::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).context("a path with a NUL byte")
}

impl Setup {
    fn new(root: &Path, binds: &[(PathBuf, PathBuf)], console: &Path) -> anyhow::Result<Setup> {
        Ok(Setup {
            root: c(root)?,
            binds: binds.iter().map(|(h, m)| Ok((c(h)?, c(m)?))).collect::<anyhow::Result<_>>()?,
            console: (c(console)?, c(&root.join("dev/console"))?),
        })
    }

    /// Its own process group (killed as one), mount and network namespaces, the host's
    /// directories bound into the run's root, `/dev/console` a file the host prints, then
    /// that root.
    fn enter(&self) -> std::io::Result<()> {
        let check =
            |r: libc::c_int| if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) };
        // SAFETY: system calls on NUL-terminated strings that live as long as `self`.
        unsafe {
            check(libc::setpgid(0, 0))?;
            check(libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWNET))?;
            check(libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            // The root a mount of its own: `/` in the chroot is then a mount point, which
            // changing its propagation needs (`ip -n NETNS ...` makes it a slave).
            check(libc::mount(
                self.root.as_ptr(),
                self.root.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND | libc::MS_REC,
                std::ptr::null(),
            ))?;
            for (host, at) in &self.binds {
                check(libc::mount(
                    host.as_ptr(),
                    at.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                ))?;
            }
            // Only where the host has a /dev with a console to cover.
            let _ = libc::mount(
                self.console.0.as_ptr(),
                self.console.1.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            );
            check(libc::chroot(self.root.as_ptr()))?;
            check(libc::chdir(c"/".as_ptr()))
        }
    }
}

fn kill_group(pgid: libc::pid_t) {
    // SAFETY: kill takes no pointers; a group that is gone gives ESRCH, which is fine.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
}

fn sha256(path: &Path) -> anyhow::Result<String> {
    let out = Command::new("sha256sum").arg(path).output().context("running sha256sum")?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.split_whitespace().next() {
        Some(sum) if out.status.success() => Ok(sum.to_owned()),
        _ => bail!("sha256sum {}: {}", path.display(), String::from_utf8_lossy(&out.stderr)),
    }
}

fn tail(text: &str) -> String {
    super::run::tail(&text.lines().map(str::to_owned).collect::<Vec<_>>())
}
