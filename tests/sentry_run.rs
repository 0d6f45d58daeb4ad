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
