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
