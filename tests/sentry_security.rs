//! The process security model in the Sentry: capabilities, no_new_privs, seccomp filters and
//! profiles, read-only and masked paths, through `ringfence sentry run` and through the
//! control protocol of a pod sandbox (`sentry exec`), which the CRI uses.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::sentry::{PodSandbox, busybox_rootfs, compile, ringfence, run_with_input};

/// `ringfence sentry run` with `flags` before the command.
fn run(root: &Path, flags: &[&str], script: &str) -> Output {
    let mut cmd = Command::new(ringfence());
    cmd.args(["sentry", "run", "--rootfs"])
        .arg(root)
        .args(flags)
        .args(["--", "/bin/sh", "-c", script]);
    run_with_input(cmd, b"")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A C program exercising capget/capset, the capability prctls, no_new_privs and seccomp
/// filters it installs itself: Linux (as root) is the oracle.
#[test]
fn capabilities_no_new_privs_and_seccomp_filters_behave_as_on_linux() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    for d in ["bin", "tmp", "proc", "dev"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let bin = root.join("bin/security");
    compile("security", &bin, &["-static", "-pthread"]);
    let native = Command::new(&bin).stderr(Stdio::inherit()).output().unwrap();
    let mut cmd = Command::new(ringfence());
    cmd.args(["sentry", "run", "--rootfs"]).arg(&root).args(["--", "/bin/security"]);
    let got = run_with_input(cmd, b"");
    let (out, err) = text(&got);
    assert_eq!(got.status.code(), Some(0), "{err}");
    assert_eq!(out, String::from_utf8_lossy(&native.stdout));
    for want in [
        "raise permitted: EPERM",
        "effective beyond permitted: EPERM",
        "after setuid: eff 0 prm 0",
        "kept: eff 0 prm 1",
        "filter without nnp or CAP_SYS_ADMIN: EACCES",
        "jump out of range: EINVAL",
        "division by zero: EINVAL",
        "5000 instructions: EINVAL",
        "stacked: getppid EPERM uname EACCES",
        "after exec: Seccomp:\t2 getppid EPERM",
        "si_syscall 110 si_code 1 si_errno 42 arch ok 1",
        "kill process: killed by Bad system call",
        "kill thread: killed by Bad system call",
        "write to stderr: EACCES",
        "write still works\nstrict: killed by Killed",
        "other thread's getppid: ENOTTY",
        "killed thread finished: 0, process alive",
    ] {
        assert!(out.contains(want), "{want:?} missing from\n{out}");
    }
}

/// A set-user-ID root program raises a user to root, as on Linux, unless no_new_privs is set.
#[test]
fn set_user_id_programs_raise_privilege_unless_no_new_privs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    for d in ["bin", "tmp", "proc", "dev"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let bin = root.join("bin/suid");
    compile("security", &bin, &["-static", "-pthread"]);
    // The tests run as root, so the file is root's.
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let ids = |flags: &[&str]| {
        let mut cmd = Command::new(ringfence());
        cmd.args(["sentry", "run", "--rootfs"]).arg(&root).args(flags).args([
            "--",
            "/bin/suid",
            "ids",
        ]);
        text(&run_with_input(cmd, b"")).0
    };
    assert_eq!(ids(&["--user", "1000"]), "uid 1000 euid 0 setuid-capable 1\n");
    assert_eq!(ids(&["--user", "1000", "--no-new-privs"]), "uid 1000 euid 1000 setuid-capable 0\n");
}

#[test]
fn dropped_capabilities_no_new_privs_and_a_profile_show_in_proc_status() {
    let dir = tempfile::tempdir().unwrap();
    let root = busybox_rootfs(dir.path());
    let flags = [
        "--cap-drop",
        "NET_RAW",
        "--cap-drop",
        "cap_sys_admin",
        "--no-new-privs",
        "--seccomp-profile",
        "runtime-default",
    ];
    let got = run(
        &root,
        &flags,
        "grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status; hostname x; echo $?",
    );
    let (out, err) = text(&got);
    let eff = 0x1ff_ffff_ffffu64 & !(1 << 13) & !(1 << 21);
    let want = format!(
        "CapInh:\t0000000000000000\nCapPrm:\t{eff:016x}\nCapEff:\t{eff:016x}\nCapBnd:\t{eff:016x}\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\nSeccomp_filters:\t1\n1\n"
    );
    assert_eq!(out, want, "{err}");
    assert!(err.contains("Operation not permitted"), "sethostname needs CAP_SYS_ADMIN: {err}");

    // Without options: root with every capability, unconfined.
    let got = run(&root, &[], "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status");
    assert_eq!(text(&got).0, "CapEff:\t000001ffffffffff\nNoNewPrivs:\t0\nSeccomp:\t0\n");
}

#[test]
fn a_non_root_user_has_no_capabilities() {
    let dir = tempfile::tempdir().unwrap();
    let root = busybox_rootfs(dir.path());
    let got = run(
        &root,
        &["--user", "1000:1000", "--group-add", "5"],
        "id; grep -E '^Cap(Prm|Eff)' /proc/self/status; hostname x || echo refused; \
         touch /bin/x || echo denied; nc -l -p 80 || echo no port 80",
    );
    let (out, err) = text(&got);
    assert_eq!(
        out,
        "uid=1000 gid=1000 groups=5\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nrefused\ndenied\nno port 80\n",
        "{err}"
    );
    assert!(err.contains("bind: Permission denied"), "{err}");
}

#[test]
fn a_seccomp_profile_refuses_only_what_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let root = busybox_rootfs(dir.path());
    let profile = dir.path().join("profile.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["sethostname"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}"#,
    )
    .unwrap();
    let flags = ["--seccomp-profile", profile.to_str().unwrap()];
    let got =
        run(&root, &flags, "hostname x; echo rc=$?; hostname; echo ok > /tmp/f && cat /tmp/f");
    let (out, err) = text(&got);
    assert_eq!(out, "rc=1\nsandbox\nok\n", "{err}");
    assert!(err.contains("sethostname: Operation not permitted"), "{err}");

    // The runtime default refuses namespaces and mounts, and leaves ordinary work alone.
    let got = run(
        &root,
        &["--seccomp-profile", "runtime-default"],
        "unshare -n true || echo unshare refused; ls /bin | grep -c . >/dev/null && echo ls ok",
    );
    let (out, err) = text(&got);
    assert_eq!(out, "unshare refused\nls ok\n", "{err}");
    assert!(err.contains("Operation not permitted"), "{err}");

    // A profile the Sentry cannot enforce is refused up front.
    std::fs::write(&profile, r#"{"defaultAction": "SCMP_ACT_NOTIFY"}"#).unwrap();
    let got = run(&root, &flags, "true");
    assert_ne!(got.status.code(), Some(0));
    assert!(text(&got).1.contains("SCMP_ACT_NOTIFY"), "{}", text(&got).1);
}

#[test]
fn read_only_root_masked_and_read_only_paths() {
    let dir = tempfile::tempdir().unwrap();
    let root = busybox_rootfs(dir.path());
    std::fs::write(root.join("etc/secret"), "secret\n").unwrap();
    std::fs::create_dir_all(root.join("etc/keys")).unwrap();
    std::fs::write(root.join("etc/keys/k"), "key\n").unwrap();
    std::fs::create_dir_all(root.join("data")).unwrap();
    let vol = dir.path().join("vol");
    std::fs::create_dir_all(&vol).unwrap();
    let vol_arg = format!("{}:/vol", vol.display());
    let flags = [
        "--read-only",
        "--masked-path",
        "/etc/secret",
        "--masked-path",
        "/etc/keys",
        "--masked-path",
        "/no/such/path",
        "--readonly-path",
        "/proc/sys",
        "--volume",
        &vol_arg,
    ];
    let script = "echo x > /new || echo root refused; \
        echo y > /dev/shm/y && cat /dev/shm/y; echo v > /vol/v && echo volume written; \
        echo -n secret:; cat /etc/secret; echo; ls -A /etc/keys | wc -l; \
        echo z > /etc/secret; echo masked-write=$?; \
        touch /proc/sys/x || echo proc/sys refused";
    let got = run(&root, &flags, script);
    let (out, err) = text(&got);
    assert_eq!(
        out, "root refused\ny\nvolume written\nsecret:\n0\nmasked-write=0\nproc/sys refused\n",
        "{err}"
    );
    assert!(err.contains("Read-only file system"), "{err}");
    assert_eq!(std::fs::read_to_string(vol.join("v")).unwrap(), "v\n");
    assert_eq!(std::fs::read_to_string(root.join("etc/secret")).unwrap(), "secret\n");
}

#[test]
fn read_only_and_masked_paths_on_a_writable_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = busybox_rootfs(dir.path());
    std::fs::create_dir_all(root.join("data/sub")).unwrap();
    std::fs::write(root.join("data/sub/f"), "kept\n").unwrap();
    std::fs::create_dir_all(root.join("etc/keys")).unwrap();
    let flags = ["--readonly-path", "/data", "--masked-path", "/etc/keys"];
    let script = "touch /data/x || echo data refused; echo y > /data/sub/f || echo sub refused; \
        cat /data/sub/f; touch /etc/keys/k || echo mask refused; touch /etc/y && echo etc written";
    let got = run(&root, &flags, script);
    let (out, err) = text(&got);
    assert_eq!(out, "data refused\nsub refused\nkept\nmask refused\netc written\n", "{err}");
    assert_eq!(err.matches("Read-only file system").count(), 3, "{err}");
}

/// The same settings through the control protocol: a pod sandbox's container and an exec
/// into it (what the CRI sends).
#[test]
fn the_control_protocol_carries_the_security_settings() {
    let dir = tempfile::tempdir().unwrap();
    let root = busybox_rootfs(&dir.path().join("c"));
    std::fs::write(root.join("etc/secret"), "secret\n").unwrap();
    let sandbox = PodSandbox::start(dir.path());
    let exec = |args: &[&str]| run_with_input(sandbox.exec(args), b"");
    let mut main = sandbox.exec(&["--rootfs", root.to_str().unwrap()]);
    main.args([
        "--id",
        "app",
        "--read-only",
        "--masked-path",
        "/etc/secret",
        "--cap-drop",
        "ALL",
        "--cap-add",
        "CHOWN",
        "--",
        "/bin/sh",
        "-c",
        "grep CapEff /proc/self/status; cat /etc/secret; touch /f || echo ro; sleep 30",
    ]);
    main.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut main = main.spawn().unwrap();
    // An exec into the running container gets its own settings and the container's root.
    let script =
        "id -u; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; cat /etc/secret; echo end";
    let args = ["--in", "app", "--user", "1000", "--no-new-privs", "--", "/bin/sh", "-c", script];
    // The container may not be registered yet when the first exec arrives.
    let mut got = exec(&args);
    for _ in 0..50 {
        if got.status.code() == Some(0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        got = exec(&args);
    }
    let (out, err) = text(&got);
    assert_eq!(out, "1000\nCapEff:\t0000000000000000\nNoNewPrivs:\t1\nend\n", "{err}");
    let _ = main.kill();
    let out = main.wait_with_output().unwrap();
    let (out, _) = text(&out);
    assert!(out.starts_with("CapEff:\t0000000000000001\nro\n"), "{out}");
}
