//! Debian's own programs in the Sentry, each compared line for line with the same script run
//! natively in a chroot of the same root: bash, coreutils and util-linux, Python (threads,
//! multiprocessing, asyncio, sockets, signals, sqlite3), perl, git, make with gcc, tar with xz,
//! and curl against a server in the same sandbox. The scripts are in `tests/sentry/debian`.
//!
//! The root is this host's Debian: its `/usr` (every package scripts/setup installs) shared
//! read-only, with the usr-merge links, the accounts and the alternatives of `/etc` copied.
//! Both runs get the same environment, a fresh `/tmp` and a network of their own (loopback).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SCRIPTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sentry/debian");
const PATH: &str = "PATH=/usr/bin:/bin";
const HOME: &str = "HOME=/tmp";
/// How long a native run may take before the test fails (the Sentry's runs have their own
/// watchdog, which also dumps the sandbox's tasks).
const NATIVE_LIMIT_SECS: &str = "120";

/// A root over this host's Debian `/usr`, with `script` under `/work`.
fn debian_root(dir: &Path, script: &str) -> PathBuf {
    let root = dir.join("root");
    for d in ["usr", "etc", "tmp", "proc", "dev", "work"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    for link in ["bin", "lib", "lib64", "sbin"] {
        std::os::unix::fs::symlink(format!("usr/{link}"), root.join(link)).unwrap();
    }
    for f in ["passwd", "group"] {
        std::fs::copy(Path::new("/etc").join(f), root.join("etc").join(f)).unwrap();
    }
    // awk, and other commands Debian chooses between, are links through /etc/alternatives.
    let alternatives = Command::new("cp")
        .args(["-a", "/etc/alternatives"])
        .arg(root.join("etc"))
        .status()
        .unwrap();
    assert!(alternatives.success(), "copying /etc/alternatives");
    std::fs::copy(Path::new(SCRIPTS).join(script), root.join("work").join(script)).unwrap();
    root
}

fn in_sentry(root: &Path, argv: &[&str]) -> Output {
    let mut cmd = Command::new(common::sentry::ringfence());
    cmd.args(["sentry", "run", "--rootfs"]).arg(root);
    cmd.args(["--volume", "/usr:/usr:ro", "--env", PATH, "--env", HOME, "--"]).args(argv);
    common::sentry::run_with_input(cmd, b"")
}

/// `argv` chrooted into `root` in mount and network namespaces of its own: `/usr` bound
/// read-only, a tmpfs on `/tmp`, `/proc` and the host's `/dev`, loopback up.
fn natively(root: &Path, argv: &[&str]) -> Output {
    let r = root.display();
    let setup = format!(
        "set -e; ip link set lo up; mount --bind /usr {r}/usr; mount -o remount,bind,ro {r}/usr; \
         mount -t tmpfs tmpfs {r}/tmp; mount -t proc proc {r}/proc; mount --rbind /dev {r}/dev; \
         exec chroot {r} /usr/bin/env -i {PATH} {HOME} \"$@\""
    );
    Command::new("timeout")
        .args(["-k", "5", NATIVE_LIMIT_SECS, "unshare", "--mount", "--net", "--fork", "--"])
        .args(["sh", "-c", &setup, "native"])
        .args(argv)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// Runs `tests/sentry/debian/SCRIPT` with `interpreter` natively and in the Sentry, each on a
/// root of its own; both must succeed with the same output, which must hold `expected`.
fn matches_native(script: &str, interpreter: &str, expected: &[&str]) {
    let argv = [interpreter, &format!("/work/{script}")];
    let native_dir = tempfile::tempdir().unwrap();
    let native = natively(&debian_root(native_dir.path(), script), &argv);
    let text = |o: &Output| String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        native.status.success(),
        "{script} failed natively ({}):\n{}\n{}",
        native.status,
        text(&native),
        String::from_utf8_lossy(&native.stderr)
    );
    let sandbox_dir = tempfile::tempdir().unwrap();
    let root = debian_root(sandbox_dir.path(), script);
    let got = in_sentry(&root, &argv);
    assert_eq!(
        got.status.code(),
        Some(0),
        "{script} in the Sentry:\n{}\n{}",
        text(&got),
        String::from_utf8_lossy(&got.stderr)
    );
    assert_eq!(text(&got), text(&native), "{script}: the Sentry's output (left) differs");
    for want in expected {
        assert!(text(&got).contains(want), "{script}: {want:?} missing from\n{}", text(&got));
    }
    // The sandbox wrote to its own /tmp, never to the root it was given.
    assert_eq!(
        std::fs::read_dir(root.join("tmp")).unwrap().count(),
        0,
        "{script} wrote to the root"
    );
}

#[test]
fn bash_arrays_traps_jobs_and_process_substitution_match_native() {
    matches_native(
        "bash.sh",
        "/bin/bash",
        &[
            "array 4 three two three",
            "pipefail 1",
            "trapped USR1",
            "killed job 143",
            "diff lines 2",
        ],
    );
}

#[test]
fn coreutils_timeout_nice_df_and_flock_match_native() {
    matches_native(
        "coreutils.sh",
        "/bin/bash",
        &["timeout 124", "timeout KILL 137", "nice 5", "flock: held lock refused", "df / ok"],
    );
}

#[test]
fn python_threads_processes_asyncio_sockets_and_sqlite_match_native() {
    matches_native(
        "programs.py",
        "/usr/bin/python3",
        &["threads 40000", "spawned pool 144", "asyncio PING", "sqlite (1000, 499500)", "peer"],
    );
}

#[test]
fn perl_matches_native() {
    matches_native("programs.pl", "/usr/bin/perl", &["child exit 7", "The Quick Brown Fox"]);
}

#[test]
fn git_makes_the_same_commits_as_native() {
    matches_native("git.sh", "/bin/bash", &["log third second first", "describe v1", "fsck 0"]);
}

#[test]
fn make_and_gcc_build_and_rebuild_as_native() {
    matches_native("make.sh", "/bin/bash", &["sum 42", "up to date", "sum 440", "broken refused"]);
}

#[test]
fn tar_and_xz_round_trip_as_native() {
    matches_native("tar.sh", "/bin/bash", &["xz test ok", "unpacked identical"]);
}

#[test]
fn curl_fetches_from_a_server_in_the_sandbox_as_native() {
    matches_native("curl.sh", "/bin/bash", &["body 3000 3000", "missing 404", "HTTP/1.0 200 OK"]);
}
