//! Pod sandboxes: one Sentry, several containers with their own root filesystems sharing the
//! sandbox's network; exec into a container; signals and exit statuses through the control
//! socket.

mod common;

use std::time::{Duration, Instant};

use common::sentry::{PodSandbox as Pod, busybox_rootfs};

#[test]
fn containers_share_the_pod_network_but_not_their_filesystems() {
    let dir = tempfile::tempdir().unwrap();
    let web_root = busybox_rootfs(&dir.path().join("web"));
    std::fs::create_dir_all(web_root.join("www")).unwrap();
    std::fs::write(web_root.join("www/index.html"), "served from the web container\n").unwrap();
    let client_root = busybox_rootfs(&dir.path().join("client"));
    let pod = Pod::start(dir.path());

    let mut web = pod
        .exec(&["--rootfs"])
        .arg(&web_root)
        .args(["--id", "web", "--", "/bin/httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/www"])
        .spawn()
        .unwrap();
    let fetch = || {
        pod.exec(&["--rootfs"])
            .arg(&client_root)
            .args(["--id", &format!("client-{}", rand_id()), "--", "/bin/sh", "-c"])
            .arg("wget -q -O- http://127.0.0.1:8080/ && ls /www 2>&1; true")
            .output()
            .unwrap()
    };
    let start = Instant::now();
    let out = loop {
        let out = fetch();
        if String::from_utf8_lossy(&out.stdout).contains("served")
            || start.elapsed() > Duration::from_secs(10)
        {
            break out;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("served from the web container\n"), "{stdout}");
    assert!(
        stdout.contains("No such file or directory"),
        "the client container has no /www: {stdout}"
    );

    // Exec into the running web container sees its filesystem; its status comes back.
    let out = pod
        .exec(&["--in", "web", "--", "/bin/sh", "-c", "cat /www/index.html; exit 3"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "served from the web container\n");
    assert_eq!(out.status.code(), Some(3));

    // A signal through the control socket ends the web server; its client reports it.
    let _ = pod.exec(&["--in", "web", "--", "/bin/sh", "-c", "kill -TERM $(pidof httpd)"]).status();
    let status = web.wait().unwrap();
    assert_eq!(status.code(), Some(128 + 15));
}

#[test]
fn bad_requests_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let root = busybox_rootfs(dir.path());
    let pod = Pod::start(dir.path());
    let out = pod.exec(&["--in", "nope", "--", "/bin/true"]).output().unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no container nope"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = pod
        .exec(&["--rootfs"])
        .arg(&root)
        .args(["--id", "x", "--", "/bin/missing"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot execute /bin/missing"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The sandbox still serves.
    let out = pod
        .exec(&["--rootfs"])
        .arg(&root)
        .args(["--id", "y", "--", "/bin/echo", "ok"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");
}

/// A pod sandbox prints its task dump to its stderr (the CRI keeps it in the sandbox's
/// sentry.log) on SIGRTMIN+3, and goes on serving.
#[test]
fn a_pod_sandbox_prints_a_task_dump() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let log = dir.path().join("sentry.log");
    let mut sandbox = std::process::Command::new(common::sentry::ringfence())
        .args(["sentry", "sandbox", "--control"])
        .arg(&socket)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let up = common::eventually(std::time::Duration::from_secs(10), || socket.exists());
    let dumped = up && {
        // SAFETY: signalling our own child, not yet reaped.
        unsafe { libc::kill(sandbox.id() as i32, libc::SIGRTMIN() + 3) };
        common::eventually(std::time::Duration::from_secs(10), || {
            std::fs::read_to_string(&log).unwrap_or_default().contains("Sentry tasks (1):")
        })
    };
    let alive = sandbox.try_wait().unwrap().is_none();
    let _ = sandbox.kill();
    let _ = sandbox.wait();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(up && dumped && alive, "up {up}, dumped {dumped}, alive {alive}: {text}");
    assert!(text.contains("task 1 "), "{text}");
    eprintln!(
        "{}",
        text.lines().skip_while(|l| !l.starts_with("Sentry tasks")).collect::<Vec<_>>().join("\n")
    );
}

fn rand_id() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
}
