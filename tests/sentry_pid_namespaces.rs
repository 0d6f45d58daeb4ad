//! PID namespaces of a pod sandbox's containers, through `ringfence sentry exec`: a container
//! of its own namespace sees itself as PID 1 and none of the others' processes; containers of
//! the pod's namespace see each other; execs join their container's namespace; a namespace's
//! init is protected from its own namespace's signals, adopts orphans, and takes the namespace
//! along when it dies.

mod common;

use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use common::sentry::{PodSandbox as Pod, busybox_rootfs};

/// Kills a background container's client however the test ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn output(mut cmd: Command) -> (String, String) {
    let Output { stdout, stderr, .. } = cmd.output().unwrap();
    (String::from_utf8_lossy(&stdout).into_owned(), String::from_utf8_lossy(&stderr).into_owned())
}

/// Starts container `id` running `script` in PID namespace `mode`, in the background.
fn container(pod: &Pod, root: &std::path::Path, id: &str, mode: &str, script: &str) -> Running {
    let mut cmd = pod.exec(&["--rootfs"]);
    cmd.arg(root).args(["--id", id, "--pid-namespace", mode, "--", "/bin/sh", "-c", script]);
    Running(cmd.stdout(std::process::Stdio::piped()).spawn().unwrap())
}

/// Runs `script` in container `id`; its stdout.
fn exec_in(pod: &Pod, id: &str, script: &str) -> String {
    output(pod.exec(&["--in", id, "--", "/bin/sh", "-c", script])).0
}

/// Waits until `script` run in container `id` prints something containing `want`.
fn until(pod: &Pod, id: &str, script: &str, want: &str) -> String {
    let start = Instant::now();
    loop {
        let out = exec_in(pod, id, script);
        if out.contains(want) || start.elapsed() > Duration::from_secs(20) {
            return out;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

const PS: &str = "ps -o pid,args";

#[test]
fn containers_see_their_own_namespace_the_pods_or_their_targets() {
    let _watchdog = common::watchdog("sentry_pid_namespaces", Duration::from_secs(180));
    let dir = tempfile::tempdir().unwrap();
    let root = busybox_rootfs(dir.path());
    let pod = Pod::start(dir.path());

    // Two containers in the pod's namespace first, so that the others' global ids run past
    // the few ids their own namespaces give out.
    let _p1 = container(&pod, &root, "p1", "pod", "exec sleep 3001");
    let _p2 = container(&pod, &root, "p2", "pod", "exec sleep 3002");
    let ps = until(&pod, "p2", PS, "sleep 3001");
    assert!(ps.contains("sleep 3002"), "{ps}");

    // Two containers of their own: each one's main process is PID 1, its parent outside (0).
    let mut a = container(&pod, &root, "a", "container", "echo a $$ $PPID; exec sleep 1001");
    let _b = container(&pod, &root, "b", "container", "exec sleep 1002");
    let ps_b = until(&pod, "b", PS, "sleep 1002");
    let ps_a = until(&pod, "a", PS, "sleep 1001");
    for (ps, own, other) in [(&ps_a, "1001", "1002"), (&ps_b, "1002", "1001")] {
        let first = ps.lines().nth(1).unwrap_or_default();
        assert!(first.trim_start().starts_with("1 ") && first.ends_with(own), "{ps}");
        assert!(!ps.contains(other) && !ps.contains("300"), "only its own processes: {ps}");
    }
    // /proc lists the same; an exec joins the container's namespace (its parent is outside).
    let listing =
        exec_in(&pod, "a", "echo $$ $PPID; cat /proc/1/comm; ls /proc | grep -c '^[0-9]'");
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines[1], "sleep", "{listing}");
    let (me, parent) = lines[0].split_once(' ').unwrap();
    assert!(me.parse::<i32>().unwrap() > 1 && parent == "0", "{listing}");
    assert!(lines[2].parse::<u32>().unwrap() <= 4, "a's sleep, this shell and its pipe: {listing}");
    let status = exec_in(&pod, "a", "grep -E '^(Pid|PPid|NSpid|NStgid):' /proc/1/status");
    assert_eq!(status, "Pid:\t1\nPPid:\t0\nNStgid:\t1\nNSpid:\t1\n");

    // The pod's namespace sees everyone, with their ids at both levels.
    let ps_pod = exec_in(&pod, "p1", PS);
    assert!(ps_pod.contains("sleep 1001") && ps_pod.contains("sleep 1002"), "{ps_pod}");
    let global_a: i32 = ps_pod
        .lines()
        .find(|l| l.contains("sleep 1001"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap();
    assert!(global_a > 4, "{ps_pod}");
    let nspid = exec_in(&pod, "p1", &format!("grep NSpid /proc/{global_a}/status"));
    assert_eq!(nspid, format!("NSpid:\t{global_a}\t1\n"));

    // b can neither name nor signal a's processes; kill -1 there reaches only b's own.
    let kill = output(pod.exec(&["--in", "b", "--", "/bin/kill", "-0", &global_a.to_string()]));
    assert!(kill.1.contains("No such process") || kill.1.contains("o such"), "{kill:?}");
    assert_eq!(exec_in(&pod, "b", "sleep 1005 & kill -9 -1; echo $?"), "0\n");
    assert!(exec_in(&pod, "a", PS).contains("sleep 1001"), "a lives on");
    assert!(exec_in(&pod, "b", PS).contains("sleep 1002"), "b's init is protected");

    // A namespace's init ignores its own namespace's signals without a handler, even SIGKILL.
    assert_eq!(exec_in(&pod, "a", "kill -TERM 1; kill -KILL 1; echo $?"), "0\n");
    assert!(exec_in(&pod, "a", PS).contains("sleep 1001"), "a's init survives");

    // A target shares a's namespace.
    let _t = container(&pod, &root, "t", "target:a", "exec sleep 1003");
    let ps_t = until(&pod, "t", PS, "sleep 1003");
    let first = ps_t.lines().nth(1).unwrap_or_default();
    assert!(first.trim_start().starts_with("1 ") && first.ends_with("sleep 1001"), "{ps_t}");
    assert!(ps_t.contains("sleep 1003") && !ps_t.contains("1002"), "{ps_t}");

    // Orphans go to the namespace's init; when it dies (SIGKILL from the pod's namespace, an
    // ancestor), every other process of the namespace dies with it.
    let orphan = exec_in(&pod, "a", "sleep 1004 >/dev/null 2>&1 & echo $!");
    let orphan = orphan.trim();
    let ppid = until(&pod, "a", &format!("grep PPid /proc/{orphan}/status"), "PPid:\t1\n");
    assert_eq!(ppid, "PPid:\t1\n");
    let _ = exec_in(&pod, "p1", &format!("kill -KILL {global_a}"));
    let status = a.0.wait().unwrap();
    assert_eq!(status.code(), Some(137));
    let mut said = String::new();
    std::io::Read::read_to_string(&mut a.0.stdout.take().unwrap(), &mut said).unwrap();
    assert_eq!(said, "a 1 0\n", "its own pid and its parent's, outside");
    let start = Instant::now();
    let mut ps_pod = exec_in(&pod, "p1", PS);
    while ["1001", "1003", "1004"].iter().any(|s| ps_pod.contains(s))
        && start.elapsed() < Duration::from_secs(20)
    {
        std::thread::sleep(Duration::from_millis(100));
        ps_pod = exec_in(&pod, "p1", PS);
    }
    for gone in ["sleep 1001", "sleep 1003", "sleep 1004"] {
        assert!(!ps_pod.contains(gone), "a's namespace is gone with its init: {ps_pod}");
    }
    assert!(ps_pod.contains("sleep 1002"), "b's is not: {ps_pod}");
    let late = output(pod.exec(&["--in", "a", "--", "/bin/true"]));
    assert!(late.1.contains("container a has exited"), "{late:?}");
}

#[test]
fn an_unknown_target_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let root = busybox_rootfs(dir.path());
    let pod = Pod::start(dir.path());
    let mut cmd = pod.exec(&["--rootfs"]);
    cmd.arg(&root).args(["--id", "x", "--pid-namespace", "target:nope", "--", "/bin/true"]);
    let (_, err) = output(cmd);
    assert!(err.contains("no container nope to share a PID namespace with"), "{err}");
}
