//! `ringfence sentry run`: programs from a rootfs directory run in the Sentry with their
//! stdio, exit status and signals.

mod common;

use common::sentry::{busybox_rootfs, sentry_run};

#[test]
fn exit_status_and_output_are_the_programs() {
    let dir = tempfile::tempdir().unwrap();
    let root = busybox_rootfs(dir.path());
    let out = sentry_run(&root, "/", &["/bin/sh", "-c", "echo hello; echo oops >&2; exit 7"], b"");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("oops"));
    assert_eq!(out.status.code(), Some(7));
}

#[test]
fn killed_by_a_signal_exits_128_plus_signal() {
    let dir = tempfile::tempdir().unwrap();
    let root = busybox_rootfs(dir.path());
    // init ignores signals it has no handler for, so a child gets killed and the shell
    // reports it.
    let out = sentry_run(&root, "/", &["/bin/sh", "-c", "sh -c 'kill -9 $$'; echo $?"], b"");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "137\n");
    let out = sentry_run(&root, "/", &["/bin/busybox", "sh", "-c", "exec kill -SEGV 1"], b"");
    assert_eq!(out.status.code(), Some(0), "init is protected from signals without handlers");
}

#[test]
fn stdin_is_streamed() {
    let dir = tempfile::tempdir().unwrap();
    let root = busybox_rootfs(dir.path());
    let out = sentry_run(&root, "/", &["/bin/sh", "-c", "tr a-z A-Z | wc -c"], b"hello sandbox\n");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "14");
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn rootfs_on_the_host_is_never_written() {
    let dir = tempfile::tempdir().unwrap();
    let root = busybox_rootfs(dir.path());
    let out = sentry_run(
        &root,
        "/",
        &["/bin/sh", "-c", "echo x > /etc/new; rm /bin/cat; mkdir /d; ls /etc"],
        b"",
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hostname\nnew\n");
    assert!(!root.join("etc/new").exists());
    assert!(root.join("bin/cat").symlink_metadata().is_ok());
    assert!(!root.join("d").exists());
}

#[test]
fn a_missing_program_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let root = busybox_rootfs(dir.path());
    let out = sentry_run(&root, "/", &["/bin/nope"], b"");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot execute /bin/nope") && err.contains("ENOENT"), "{err}");
}

/// The Sentry and its Gofer run under seccomp filters once the sandbox is set up.
#[test]
fn sentry_and_gofer_are_confined_by_seccomp() {
    let dir = tempfile::tempdir().unwrap();
    let root = busybox_rootfs(dir.path());
    let mut child = std::process::Command::new(common::sentry::ringfence())
        .args(["sentry", "run", "--rootfs"])
        .arg(&root)
        .args(["--", "/bin/sh", "-c", "echo up; sleep 5"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line, "up\n");
    let seccomp_mode = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("Seccomp:").map(|v| v.trim().to_string()))
            .unwrap()
    };
    assert_eq!(seccomp_mode(child.id()), "2", "the Sentry runs in seccomp filter mode");
    let children =
        std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", child.id())).unwrap();
    let gofers: Vec<u32> = children.split_whitespace().map(|p| p.parse().unwrap()).collect();
    assert_eq!(gofers.len(), 1, "one Gofer process");
    assert_eq!(seccomp_mode(gofers[0]), "2", "the Gofer runs in seccomp filter mode");
    child.kill().unwrap();
    child.wait().unwrap();
}

fn run_with_volumes(
    root: &std::path::Path,
    volumes: &[&str],
    script: &str,
) -> std::process::Output {
    let mut cmd = std::process::Command::new(common::sentry::ringfence());
    cmd.args(["sentry", "run", "--rootfs"]).arg(root);
    for v in volumes {
        cmd.args(["--volume", v]);
    }
    cmd.args(["--", "/bin/sh", "-c", script]);
    common::sentry::run_with_input(cmd, b"")
}

#[test]
fn volumes_write_through_to_the_host_and_nowhere_else() {
    let dir = tempfile::tempdir().unwrap();
    let root = busybox_rootfs(&dir.path().join("image"));
    let data = dir.path().join("data");
    let config = dir.path().join("config");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("settings"), "from the host\n").unwrap();
    std::fs::write(dir.path().join("secret"), "host secret\n").unwrap();
    // A link the host left in the volume, pointing out of it.
    std::os::unix::fs::symlink(dir.path().join("secret"), data.join("hostlink")).unwrap();
    let (d, c) = (data.to_str().unwrap(), config.to_str().unwrap());
    let out = run_with_volumes(
        &root,
        &[&format!("{d}:/data"), &format!("{c}:/etc/app:ro")],
        "echo hi > /data/f && mkdir /data/d && mv /data/f /data/d/g && cat /data/d/g && \
         cat /etc/app/settings && \
         (echo x > /etc/app/settings) 2>&1; (mkdir /etc/app/new) 2>&1; \
         (cat /data/hostlink) 2>&1; \
         ln -s ../../../.. /data/up && echo planted > /data/up/tmp/escaped && \
         chmod 600 /data/d/g && dd if=/dev/zero of=/data/big bs=4096 count=256 2>/dev/null && \
         truncate -s 100 /data/big && ls /data",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "hi");
    assert_eq!(lines[1], "from the host");
    assert!(lines[2].contains("Read-only file system"), "{stdout}");
    assert!(lines[3].contains("Read-only file system"), "{stdout}");
    // The host's link resolves inside the sandbox, where there is no such file.
    assert!(lines[4].contains("No such file"), "{stdout}");
    assert_eq!(lines[5..].join(" "), "big d hostlink up");
    // On the host: the data landed in the volume, nothing outside it changed.
    assert_eq!(std::fs::read_to_string(data.join("d/g")).unwrap(), "hi\n");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.join("d/g")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(std::fs::metadata(data.join("big")).unwrap().len(), 100);
    assert_eq!(std::fs::read_to_string(config.join("settings")).unwrap(), "from the host\n");
    assert!(!config.join("new").exists());
    assert_eq!(std::fs::read_to_string(dir.path().join("secret")).unwrap(), "host secret\n");
    assert!(!std::path::Path::new("/tmp/escaped").exists());
    assert_eq!(std::fs::read_link(data.join("up")).unwrap().to_str(), Some("../../../.."));
}

#[test]
fn a_bad_volume_is_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let root = busybox_rootfs(dir.path());
    for bad in [
        "/no/such/dir:/data",
        "relative-dest:data",
        &format!("{}:/d:sideways", dir.path().display()),
    ] {
        let out = run_with_volumes(&root, &[bad], "true");
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// A `ringfence sentry run` started with `script` under busybox sh (or natively, with `None`
/// as the rootfs), stopped with `signals` once it printed "ready": its exit code, what it
/// printed after "ready", its stderr, how long it took to end after the first signal, and
/// (in the Sentry) the pid of its Gofer.
struct Stopped {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    took: std::time::Duration,
    gofer: Option<u32>,
}

fn run_and_stop(
    root: Option<&std::path::Path>,
    extra: &[&str],
    script: &str,
    signals: &[i32],
) -> Stopped {
    use std::io::{BufRead, Read};
    use std::time::{Duration, Instant};
    let mut cmd = match root {
        Some(root) => {
            let mut c = std::process::Command::new(common::sentry::ringfence());
            c.args(["sentry", "run"]).args(extra).arg("--rootfs").arg(root).arg("--");
            c.args(["/bin/sh", "-c", script]);
            c
        }
        None => {
            let mut c = std::process::Command::new("/bin/busybox");
            c.args(["sh", "-c", script]);
            c
        }
    };
    let mut child = common::default_signals(&mut cmd)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    let gofer = root.and_then(|_| {
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .ok()
            .and_then(|c| c.split_whitespace().next().and_then(|p| p.parse().ok()))
    });
    let start = Instant::now();
    for (i, sig) in signals.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(300));
        }
        // SAFETY: signalling our own child, not yet reaped.
        unsafe { libc::kill(pid, *sig) };
    }
    // Watchdog: a stop that does not work must fail the test, not hang it.
    let limit = Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("still running {limit:?} after the stop signals");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = start.elapsed();
    let mut stdout = String::new();
    out.read_to_string(&mut stdout).unwrap();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    Stopped { code: status.code(), stdout, stderr, took, gofer }
}

/// Whether process `pid` is gone (or a zombie) within a few seconds.
fn ends_soon(pid: u32) -> bool {
    for _ in 0..100 {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(s) if s.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z')) => {
                return true;
            }
            Ok(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
    false
}

/// A program that handles SIGTERM ends the way it chose, as it does natively.
#[test]
fn sigterm_is_forwarded_to_a_program_that_handles_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = busybox_rootfs(dir.path());
    // The child's output goes elsewhere and it is killed: natively it would outlive the shell.
    // "ready" once the child runs: the signal finds the shell waiting (a SIGTERM that arrived
    // while the shell was still forking it once ended the shell with SIGSEGV under load,
    // 1 run in ~10: noted for issue 19, not what this test is about).
    let script =
        "trap 'kill $!; echo bye; exit 3' TERM; sleep 1000 >/dev/null 2>&1 & echo ready; wait";
    let native = run_and_stop(None, &[], script, &[libc::SIGTERM]);
    let got = run_and_stop(Some(&root), &["--stop-timeout", "30"], script, &[libc::SIGTERM]);
    assert_eq!((got.code, got.stdout.as_str()), (native.code, native.stdout.as_str()));
    assert_eq!(got.code, Some(3), "{}", got.stderr);
    assert!(got.took < std::time::Duration::from_secs(10), "{:?}", got.took);
}

/// SIGRTMIN+3 makes the Sentry print what each task is doing (how a hang is found, and what
/// the test harness asks for before it kills a sandbox that ran too long); no task sees it.
#[test]
fn a_task_dump_shows_each_task_in_its_system_call() {
    let dir = tempfile::tempdir().unwrap();
    let root = busybox_rootfs(dir.path());
    // The background sleep has run for a while before "ready": it is in its system call.
    let script = "sleep 1000 & sleep 0.5; echo ready; wait";
    let dump = libc::SIGRTMIN() + 3;
    // "ready" comes before the shell reaches its `wait`: dumps 300 ms apart, one of which
    // finds it there however loaded the machine (one dump alone once caught it before).
    let got = run_and_stop(Some(&root), &[], script, &[dump, dump, dump, libc::SIGTERM]);
    let tasks: Vec<&str> =
        got.stderr.lines().skip_while(|l| !l.starts_with("Sentry tasks (2):")).collect();
    let task = |comm: &str, call: &str| {
        tasks.iter().any(|l| l.contains(&format!("{comm:?}")) && l.contains(call))
    };
    // The shell waits for its job (busybox's `wait` suspends until SIGCHLD).
    assert!(
        task("sh", "in rt_sigsuspend(130) for ") || task("sh", "in wait4(61) for "),
        "{}",
        got.stderr
    );
    assert!(task("sleep", "nanosleep("), "{}", got.stderr);
}

/// SIGTERM ends a sandbox whose init ignores it: killed once --stop-timeout has passed,
/// exit status 137, saying why; its Gofer ends with it.
#[test]
fn sigterm_ends_a_sandbox_that_ignores_it_after_the_stop_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let root = busybox_rootfs(dir.path());
    let script = "trap '' TERM; echo ready; sleep 1000";
    let got = run_and_stop(Some(&root), &["--stop-timeout", "2"], script, &[libc::SIGTERM]);
    assert_eq!(got.code, Some(137), "{}", got.stderr);
    assert!(got.stderr.contains("did not exit within 2s of SIGTERM"), "{}", got.stderr);
    assert!(got.took >= std::time::Duration::from_secs(2), "{:?}", got.took);
    assert!(got.took < std::time::Duration::from_secs(7), "{:?}", got.took);
    let gofer = got.gofer.expect("the Gofer's pid");
    assert!(ends_soon(gofer), "the Gofer {gofer} outlived its sandbox");
}

/// A second SIGTERM (or SIGINT) kills a spinning sandbox at once, whatever the stop timeout.
#[test]
fn a_second_termination_signal_kills_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = busybox_rootfs(dir.path());
    let script = "trap '' TERM INT; echo ready; while :; do :; done";
    let got = run_and_stop(
        Some(&root),
        &["--stop-timeout", "300"],
        script,
        &[libc::SIGTERM, libc::SIGINT],
    );
    assert_eq!(got.code, Some(137), "{}", got.stderr);
    assert!(got.stderr.contains("SIGINT received again"), "{}", got.stderr);
    assert!(got.took < std::time::Duration::from_secs(5), "{:?}", got.took);
}

/// A lone SIGINT that the program handles is only forwarded: the sandbox goes on past the stop
/// timeout and ends as it does natively.
#[test]
fn a_handled_sigint_does_not_kill_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let root = busybox_rootfs(dir.path());
    let script = "trap 'echo int' INT; echo ready; sleep 3; echo survived";
    let native = run_and_stop(None, &[], script, &[libc::SIGINT]);
    let got = run_and_stop(Some(&root), &["--stop-timeout", "1"], script, &[libc::SIGINT]);
    assert_eq!((got.code, got.stdout.as_str()), (native.code, native.stdout.as_str()));
    assert_eq!(got.stdout, "int\nsurvived\n", "{}", got.stderr);
    assert_eq!(got.code, Some(0));
}

/// `ringfence sentry check` says what the vDSO can use on this host, as measured there.
#[test]
fn check_reports_the_syscall_round_trip_and_the_vdso() {
    let out = std::process::Command::new(common::sentry::ringfence())
        .args(["sentry", "check"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    for want in ["syscall round trip: ", "vDSO clocks: ", "vDSO getcpu: "] {
        assert!(stdout.contains(want), "{want:?} missing from\n{stdout}");
    }
}
