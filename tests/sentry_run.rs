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
