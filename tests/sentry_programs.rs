//! Programs beyond busybox: a dynamically linked Debian binary with its libraries, a
//! multi-threaded C program, escape attempts, a syscall fuzzer, advisory locks across
//! processes, scheduling attributes (nice values, affinity), and descriptors reopened through
//! /proc/self/fd and /dev/std* (bash's process substitution), POSIX timers,
//! pseudo-terminals, the vDSO's clocks, filesystem statistics with df, inotify (a C program
//! and GNU `tail -f`), and System V IPC (shared memory, semaphores, message queues).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::sentry::{compile, compile_with, sentry_run, with_libraries};

fn root_dir(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    for d in ["bin", "tmp", "proc", "dev"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    root
}

#[test]
fn dynamically_linked_debian_ls_runs_with_its_own_libraries() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_dir(dir.path());
    with_libraries(&root, Path::new("/bin/ls"));
    std::fs::write(root.join("tmp/a-file"), "x").unwrap();
    let got = sentry_run(&root, "/", &["/bin/ls", "-1", "/tmp", "/lib64"], b"");
    assert_eq!(got.status.code(), Some(0), "{}", String::from_utf8_lossy(&got.stderr));
    assert_eq!(
        String::from_utf8_lossy(&got.stdout),
        "/lib64:\nld-linux-x86-64.so.2\n\n/tmp:\na-file\n"
    );
}

#[test]
fn threads_futexes_and_tls() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_dir(dir.path());
    let bin = dir.path().join("threads");
    compile("threads", &bin, &["-pthread"]);
    with_libraries(&root, &bin);
    let got = sentry_run(&root, "/", &["/bin/threads"], b"");
    assert_eq!(String::from_utf8_lossy(&got.stdout), "counter=160000 joined=280 tls=0\n");
    assert_eq!(got.status.code(), Some(0));
}

#[test]
fn no_path_reaches_host_files_outside_the_rootfs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), "HOST-SECRET\n").unwrap();
    let root = root_dir(dir.path());
    compile("escape", &root.join("bin/escape"), &["-static"]);
    // A hostile image: symlinks in the rootfs itself that point outside it.
    std::os::unix::fs::symlink("../secret", root.join("evil")).unwrap();
    std::os::unix::fs::symlink(dir.path(), root.join("evildir")).unwrap();
    let before: Vec<_> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    let got = sentry_run(&root, "/", &["/bin/escape"], b"");
    let out = String::from_utf8_lossy(&got.stdout);
    assert!(!out.contains("LEAK"), "{out}");
    assert!(out.contains("leaks=0"), "{out}");
    assert_eq!(out.matches("blocked").count(), 12, "{out}");
    assert_eq!(got.status.code(), Some(0));
    // Nothing was created or changed on the host.
    let after: Vec<_> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(before, after);
    assert_eq!(std::fs::read_to_string(dir.path().join("secret")).unwrap(), "HOST-SECRET\n");
    assert!(!root.join("tmp/rel").exists() && !root.join("tmp/jail").exists());
}

#[test]
fn random_syscalls_never_crash_or_hang_the_sentry() {
    let seconds: u64 =
        std::env::var("RINGFENCE_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(15);
    let dir = tempfile::tempdir().unwrap();
    let root = root_dir(dir.path());
    compile("fuzz", &root.join("bin/fuzz"), &["-static"]);
    let canary = dir.path().join("canary");
    std::fs::write(&canary, "untouched").unwrap();
    let start = std::time::Instant::now();
    let mut cmd = Command::new(common::sentry::ringfence());
    cmd.args(["sentry", "run", "--rootfs"])
        .arg(&root)
        .args(["--", "/bin/fuzz"])
        .arg(seconds.to_string());
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: the fuzzer stops itself after `seconds`; allow generous slack, then fail.
    let deadline = start + std::time::Duration::from_secs(seconds + 60);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the sandbox did not finish within {}s", seconds + 60);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{} in {:.1?}", stdout.trim(), start.elapsed());
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.starts_with("fuzz seed="), "{stdout}");
    assert_eq!(std::fs::read_to_string(&canary).unwrap(), "untouched");
}

#[test]
fn sendmmsg_and_recvmmsg_behave_as_on_linux() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_dir(dir.path());
    compile("mmsg", &root.join("bin/mmsg"), &["-static"]);
    // Linux is the oracle.
    let native = Command::new(root.join("bin/mmsg")).output().unwrap();
    assert!(native.status.success());
    let got = sentry_run(&root, "/", &["/bin/mmsg"], b"");
    assert_eq!(got.status.code(), Some(0), "{}", String::from_utf8_lossy(&got.stderr));
    assert_eq!(String::from_utf8_lossy(&got.stdout), String::from_utf8_lossy(&native.stdout));
    assert!(String::from_utf8_lossy(&got.stdout).contains("udp got=3 one two three"));
}

#[test]
fn posix_ofd_and_flock_locks_behave_as_on_linux() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_dir(dir.path());
    compile("locks", &root.join("bin/locks"), &["-static"]);
    // Linux is the oracle (its lock file in a directory of its own).
    let native =
        Command::new(root.join("bin/locks")).arg(dir.path().join("lockfile")).output().unwrap();
    assert!(native.status.success());
    let got = sentry_run(&root, "/", &["/bin/locks"], b"");
    assert_eq!(got.status.code(), Some(0), "{}", String::from_utf8_lossy(&got.stderr));
    assert_eq!(String::from_utf8_lossy(&got.stdout), String::from_utf8_lossy(&native.stdout));
    let out = String::from_utf8_lossy(&got.stdout);
    for want in [
        "parent waits for B: EDEADLK",
        "child interrupted: EINTR",
        "child own open EX|NB: EAGAIN",
        "done",
    ] {
        assert!(out.contains(want), "{want:?} missing from\n{out}");
    }
}

#[test]
fn nice_values_affinity_and_sync_behave_as_on_linux() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_dir(dir.path());
    compile("sched", &root.join("bin/sched"), &["-static"]);
    let native = Command::new(root.join("bin/sched")).output().unwrap();
    assert!(native.status.success());
    let got = sentry_run(&root, "/", &["/bin/sched"], b"");
    assert_eq!(got.status.code(), Some(0), "{}", String::from_utf8_lossy(&got.stderr));
    assert_eq!(String::from_utf8_lossy(&got.stdout), String::from_utf8_lossy(&native.stdout));
    let out = String::from_utf8_lossy(&got.stdout);
    for want in ["stat nice: 5", "child inherits: 3 ok", "now count=1 has0=1", "syncfs: ok"] {
        assert!(out.contains(want), "{want:?} missing from\n{out}");
    }
}

/// PID namespaces a program makes itself (unshare and clone with CLONE_NEWPID): ids on both
/// sides, the init's protection, orphans, waitid's si_pid and the namespace's end with its init.
#[test]
fn pid_namespaces_of_unshare_and_clone_behave_as_on_linux() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_dir(dir.path());
    compile("pidns", &root.join("bin/pidns"), &["-static"]);
    let native = Command::new(root.join("bin/pidns")).output().unwrap();
    assert!(native.status.success());
    let native = String::from_utf8_lossy(&native.stdout).into_owned();
    for want in ["init: pid=1 ppid=0 pgid=0 sid=0", "orphan: pid=3 ppid=1", "emptied: read=0"] {
        assert!(native.contains(want), "{want:?} missing from the native run:\n{native}");
    }
    let got = sentry_run(&root, "/", &["/bin/pidns"], b"");
    assert_eq!(got.status.code(), Some(0), "{}", String::from_utf8_lossy(&got.stderr));
    assert_eq!(String::from_utf8_lossy(&got.stdout), native);
}

/// The vDSO test program built three ways: static glibc, dynamic glibc (ld.so sets the vDSO
/// up), static musl (which finds it its own way).
fn vdso_programs(dir: &Path, root: &Path) -> [&'static str; 3] {
    compile("vdso", &root.join("bin/vdso"), &["-static", "-pthread"]);
    compile("vdso", &dir.join("vdso-dyn"), &["-pthread"]);
    with_libraries(root, &dir.join("vdso-dyn"));
    compile_with("musl-gcc", "vdso", &root.join("bin/vdso-musl"), &["-static", "-pthread"]);
    ["/bin/vdso", "/bin/vdso-dyn", "/bin/vdso-musl"]
}

/// The vDSO, as glibc and musl find it: every clock against the raw syscall, time forwards
/// across threads, getcpu, errors, and processes that break their own copy; Linux is the
/// oracle.
#[test]
fn vdso_clocks_behave_as_on_linux() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_dir(dir.path());
    let programs = vdso_programs(dir.path(), &root);
    let native = Command::new(root.join("bin/vdso")).output().unwrap();
    assert!(native.status.success());
    let native = String::from_utf8_lossy(&native.stdout).into_owned();
    let native_musl = Command::new(root.join("bin/vdso-musl")).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&native_musl.stdout), native, "musl natively");
    for want in [
        "AT_SYSINFO_EHDR present: 1 elf: 1",
        "MONOTONIC agrees with the syscall: 1",
        "REALTIME agrees with the syscall: 1",
        "MONOTONIC_RAW agrees with the syscall: 1",
        "BOOTTIME agrees with the syscall: 1",
        "getcpu: 0 cpu<ncpu 1 node 0",
        "clock 100: -1 EINVAL",
        "cputime, bad pointer: -1 EFAULT",
        "vdso monotonic, bad pointer: signal 11",
        "maps show [vvar] 1 [vdso] 1",
        "mprotect [vvar] writable: -1 EACCES",
        "MONOTONIC still agrees afterwards: 1",
        "MONOTONIC backwards across 4 threads: 0",
        "done",
    ] {
        assert!(native.contains(want), "{want:?} missing from the native run:\n{native}");
    }
    for bin in programs {
        let got = sentry_run(&root, "/", &[bin], b"");
        assert_eq!(got.status.code(), Some(0), "{}", String::from_utf8_lossy(&got.stderr));
        assert_eq!(String::from_utf8_lossy(&got.stdout), native, "{bin}");
    }
}

/// Clock reads through the vDSO never reach the Sentry: its per-syscall trace shows none of the
/// 8000 calls (with glibc and musl), while the same reads as raw syscalls show up one for one.
#[test]
fn vdso_clock_reads_make_no_syscalls() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_dir(dir.path());
    let programs = vdso_programs(dir.path(), &root);
    let traced = |bin: &str, mode: &str| {
        let mut cmd = Command::new(common::sentry::ringfence());
        cmd.env("RUST_LOG", "sentry_kvm::syscalls=trace")
            .args(["sentry", "run", "--rootfs"])
            .arg(&root)
            .args(["--", bin, mode, "1000"]);
        let got = common::sentry::run_with_input(cmd, b"");
        assert_eq!(got.status.code(), Some(0), "{}", String::from_utf8_lossy(&got.stderr));
        assert_eq!(String::from_utf8_lossy(&got.stdout), format!("{mode} 1000 1\n"));
        let trace = String::from_utf8_lossy(&got.stderr).into_owned();
        let count = |name: &str| trace.matches(&format!(" {name}(0x")).count();
        (count("clock_gettime"), count("gettimeofday"), count("time"), count("getcpu"), trace)
    };
    // Where the Sentry finds the TSC unusable (it says so), clock reads must reach it instead.
    let check = Command::new(common::sentry::ringfence()).args(["sentry", "check"]).output();
    let check = String::from_utf8_lossy(&check.unwrap().stdout).into_owned();
    let tsc = !check.contains("TSC not usable");
    let rdtscp = !check.contains("vDSO getcpu: syscall");
    for bin in programs {
        let (clock, tod, time, cpu, trace) = traced(bin, "calls");
        assert!(trace.contains(" exit_group(0x"), "the trace does not list syscalls:\n{trace}");
        assert_eq!(tsc, clock + tod + time == 0, "{bin} ({check}):\n{trace}");
        assert_eq!(rdtscp, cpu == 0, "{bin} ({check}):\n{trace}");
    }
    // This development host's KVM gives the vDSO both (docs/kvm-host-notes.md).
    if std::path::Path::new("/sys/module/kvm_pvm").exists() {
        assert!(tsc && rdtscp, "{check}");
    }
    let (clock, ..) = traced("/bin/vdso", "raw");
    assert_eq!(clock, 1000, "the trace does not count raw clock_gettime calls");
}

/// O_TMPFILE: an unnamed file named later by linkat (through /proc/self/fd or AT_EMPTY_PATH),
/// or never (O_EXCL), and Linux's errors — in the rootfs's writable layer, as natively in a
/// host directory.
#[test]
fn unnamed_temporary_files_behave_as_on_linux() {
    let dir = tempfile::tempdir().unwrap();
    let root = common::sentry::busybox_rootfs(dir.path());
    for d in ["proc", "dev", "tmp"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    compile("tmpfile", &root.join("bin/tmpfile"), &["-static"]);
    let scratch = dir.path().join("native-tmp");
    std::fs::create_dir(&scratch).unwrap();
    let native = Command::new(root.join("bin/tmpfile")).arg(&scratch).output().unwrap();
    let native = String::from_utf8_lossy(&native.stdout).into_owned();
    for want in ["nlink 0 mode 640 size 6", "linkat O_EXCL: ENOENT", "named holds: hello", "done"] {
        assert!(native.contains(want), "{want:?} missing from the native run:\n{native}");
    }
    let got = sentry_run(&root, "/", &["/bin/tmpfile", "/tmp"], b"");
    assert_eq!(got.status.code(), Some(0), "{}", String::from_utf8_lossy(&got.stderr));
    assert_eq!(String::from_utf8_lossy(&got.stdout), native);
}

/// statfs of pseudo filesystems and tmpfs, tmpfs directory sizes and RLIMIT_NOFILE (the host's,
/// kept by the descriptor table) as on Linux; busybox's and GNU coreutils' df read the mount
/// table (/proc/self/mounts, /proc/self/mountinfo) and show the sandbox's filesystems; a volume
/// reports its host filesystem.
#[test]
fn statfs_df_directory_sizes_and_nofile_behave_as_on_linux() {
    let dir = tempfile::tempdir().unwrap();
    let root = common::sentry::busybox_rootfs(dir.path());
    std::fs::create_dir_all(root.join("proc")).unwrap();
    std::fs::create_dir_all(root.join("dev")).unwrap();
    compile("fsinfo", &root.join("bin/fsinfo"), &["-static"]);
    let native = Command::new(root.join("bin/fsinfo")).output().unwrap();
    assert!(native.status.success());
    let native = String::from_utf8_lossy(&native.stdout).into_owned();
    for want in [
        "/proc: 0 type 0x9fa0 bsize 4096 blocks 0",
        "/dev/shm: 0 type 0x1021994 bsize 4096 namelen 255 frsize 4096 space 1 inodes 1 valid 1",
        "statfs bad buffer: -1 EFAULT",
        "tmpfs dir sizes: empty 40 three entries 100 two 80 blocks 0 nlink 3",
        "opened up to fd 63, then EMFILE",
        "hard above nr_open: -1 EPERM",
        "done",
    ] {
        assert!(native.contains(want), "{want:?} missing from the native run:\n{native}");
    }
    let got = sentry_run(&root, "/", &["/bin/fsinfo"], b"");
    assert_eq!(got.status.code(), Some(0), "{}", String::from_utf8_lossy(&got.stderr));
    assert_eq!(String::from_utf8_lossy(&got.stdout), native);

    // GNU df beside busybox's (its own name: /bin/df is busybox).
    let gnu = dir.path().join("gnu-df");
    std::fs::copy("/bin/df", &gnu).unwrap();
    with_libraries(&root, &gnu);
    for (ours, host) in [
        (vec!["/bin/df", "-a", "/proc", "/dev/pts"], vec!["/bin/busybox", "df", "-a"]),
        (vec!["/bin/gnu-df", "-a", "/proc", "/dev/pts"], vec!["/bin/df", "-a"]),
    ] {
        let native = Command::new(host[0]).args(&host[1..]).args(&ours[2..]).output().unwrap();
        let got = sentry_run(&root, "/", &ours, b"");
        assert_eq!(got.status.code(), Some(0), "{}", String::from_utf8_lossy(&got.stderr));
        assert_eq!(
            String::from_utf8_lossy(&got.stdout),
            String::from_utf8_lossy(&native.stdout),
            "{ours:?}"
        );
    }
    // Every filesystem with space: used + available = size, as statfs's counts agree.
    for df in ["/bin/df", "/bin/gnu-df"] {
        let got = sentry_run(&root, "/", &[df, "-k"], b"");
        let out = String::from_utf8_lossy(&got.stdout).into_owned();
        assert_eq!(got.status.code(), Some(0), "{out}{}", String::from_utf8_lossy(&got.stderr));
        let mut seen = Vec::new();
        for line in out.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let n = |i: usize| f[i].parse::<u64>().unwrap_or_else(|_| panic!("{line}"));
            assert!(n(1) > 0 && n(2) + n(3) == n(1), "{df}: {line}");
            seen.push(f[5].to_string());
        }
        assert_eq!(seen, ["/", "/dev", "/dev/shm"], "{df}:\n{out}");
    }
    let got = sentry_run(
        &root,
        "/",
        &["/bin/gnu-df", "--output=source,fstype,target", "/", "/dev/shm"],
        b"",
    );
    let out = String::from_utf8_lossy(&got.stdout);
    let rows: Vec<Vec<&str>> =
        out.lines().skip(1).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows, [["overlay", "overlay", "/"], ["shm", "tmpfs", "/dev/shm"]], "{out}");
    // A volume reports its host filesystem: the same type, block size, size and name length.
    let vol = dir.path().join("volume");
    std::fs::create_dir(&vol).unwrap();
    let fmt = "%t %s %b %l";
    let native =
        Command::new("/bin/busybox").args(["stat", "-f", "-c", fmt]).arg(&vol).output().unwrap();
    let mut cmd = Command::new(common::sentry::ringfence());
    cmd.args(["sentry", "run", "--rootfs"])
        .arg(&root)
        .arg("--volume")
        .arg(format!("{}:/data", vol.display()))
        .args(["--", "/bin/stat", "-f", "-c", fmt, "/data"]);
    let got = common::sentry::run_with_input(cmd, b"");
    assert_eq!(got.status.code(), Some(0), "{}", String::from_utf8_lossy(&got.stderr));
    assert_eq!(String::from_utf8_lossy(&got.stdout), String::from_utf8_lossy(&native.stdout));
}

/// Debian's sqlite3 with four concurrent writers: its fcntl locks must keep every row (with
/// locks that did nothing, 38-92 of 200 rows survived).
#[test]
fn four_concurrent_sqlite_writers_keep_every_row() {
    // Installed by scripts/setup.
    let sqlite = std::fs::canonicalize("/usr/bin/sqlite3").expect("/usr/bin/sqlite3");
    let dir = tempfile::tempdir().unwrap();
    let root = root_dir(dir.path());
    with_libraries(&root, &sqlite);
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for applet in ["sh", "seq"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    let script = |db: &str| {
        format!(
            "sqlite3 {db} 'create table t(w, i);'; for w in 1 2 3 4; do (for i in $(seq 50); do echo \"insert into t values($w,$i);\"; done) | sqlite3 -cmd '.timeout 20000' {db} & done; wait; sqlite3 {db} 'select count(*), count(distinct w * 1000 + i) from t; pragma integrity_check;'"
        )
    };
    // Linux is the oracle.
    let native_db = dir.path().join("native.db");
    let native = Command::new("/bin/busybox")
        .args(["sh", "-c", &script(native_db.to_str().unwrap())])
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&native.stdout), "200|200\nok\n");
    let got = sentry_run(&root, "/", &["/bin/sh", "-c", &script("/tmp/db")], b"");
    assert_eq!(got.status.code(), Some(0), "{}", String::from_utf8_lossy(&got.stderr));
    assert_eq!(String::from_utf8_lossy(&got.stdout), String::from_utf8_lossy(&native.stdout));
}

#[test]
fn descriptors_reopen_through_proc_self_fd_as_on_linux() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_dir(dir.path());
    compile("fdreopen", &root.join("bin/fdreopen"), &["-static"]);
    // Linux is the oracle; stdin is a pipe on both sides.
    let scratch = dir.path().join("scratch");
    let native = common::sentry::run_with_input(
        {
            let mut c = Command::new(root.join("bin/fdreopen"));
            c.arg(&scratch);
            c
        },
        b"from-stdin\n",
    );
    assert!(native.status.success());
    let got = sentry_run(&root, "/", &["/bin/fdreopen", "/tmp/scratch"], b"from-stdin\n");
    assert_eq!(got.status.code(), Some(0), "{}", String::from_utf8_lossy(&got.stderr));
    assert_eq!(String::from_utf8_lossy(&got.stdout), String::from_utf8_lossy(&native.stdout));
    assert_eq!(String::from_utf8_lossy(&got.stderr), "to-stderr\n");
    let out = String::from_utf8_lossy(&got.stdout);
    for want in [
        "pipe read after: via-w2",
        "socket reopen: ENXIO",
        "stdin link: pipe:[INO] ino-matches=1",
        "/dev/stdin: ok from-stdin",
        "memfd reopen: ok reads from 0: 1",
        "fexecve child exit: 7",
        "done",
    ] {
        assert!(out.contains(want), "{want:?} missing from\n{out}");
    }
}

/// The shell's view: /dev/stdin, /dev/stderr and the names of inherited stdio, for a pipe and
/// for /dev/null as the sandbox's stdin.
#[test]
fn shell_reads_dev_stdin_and_writes_dev_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let root = common::sentry::busybox_rootfs(dir.path());
    let script = "cat /dev/stdin; echo x > /dev/stderr; readlink /proc/self/fd/0 | cut -c1-6; readlink /dev/stdout | cut -c1-6";
    let got = sentry_run(&root, "/", &["/bin/sh", "-c", script], b"piped\n");
    assert_eq!(got.status.code(), Some(0), "{}", String::from_utf8_lossy(&got.stderr));
    assert_eq!(String::from_utf8_lossy(&got.stdout), "piped\npipe:[\n/proc/\n");
    assert_eq!(String::from_utf8_lossy(&got.stderr), "x\n");
    let out = Command::new(common::sentry::ringfence())
        .args(["sentry", "run", "--rootfs"])
        .arg(&root)
        .args(["--", "/bin/sh", "-c", "readlink /proc/self/fd/0; cat /dev/stdin; echo rc=$?"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "/dev/null\nrc=0\n");
}

/// Debian's bash: process substitution hands the child `/dev/fd/N` of a pipe.
#[test]
fn bash_process_substitution_reads_pipes_through_dev_fd() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_dir(dir.path());
    with_libraries(&root, Path::new("/bin/bash"));
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for applet in ["diff", "cat", "printf"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    let script = "diff <(echo a) <(echo a) && echo same; cat <(echo subst); mapfile -t L < <(printf 'x\\ny\\n'); echo ${#L[@]} ${L[1]}; cat /dev/stdin";
    let got = sentry_run(&root, "/", &["/bin/bash", "-c", script], b"in\n");
    assert_eq!(got.status.code(), Some(0), "{}", String::from_utf8_lossy(&got.stderr));
    assert_eq!(String::from_utf8_lossy(&got.stdout), "same\nsubst\n2 y\nin\n");
}

#[test]
fn posix_timers_behave_as_on_linux() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_dir(dir.path());
    compile("timers", &root.join("bin/timers"), &["-static", "-pthread"]);
    let native = Command::new(root.join("bin/timers")).output().unwrap();
    assert!(native.status.success());
    let got = sentry_run(&root, "/", &["/bin/timers"], b"");
    assert_eq!(got.status.code(), Some(0), "{}", String::from_utf8_lossy(&got.stderr));
    assert_eq!(String::from_utf8_lossy(&got.stdout), String::from_utf8_lossy(&native.stdout));
    let out = String::from_utf8_lossy(&got.stdout);
    for want in [
        "periodic: count>=5 1 took>=40ms 1 code=SI_TIMER 1 value=42 timerid-ok=1",
        "overrun: signalled=1 first si_overrun>=20 1 getoverrun==si_overrun 1",
        "thread got its signal: 1",
        "sigsuspend: -1 errno=EINTR 1 handled=1",
        "cputime: fired=1",
        "after exec: EINVAL",
        "done",
    ] {
        assert!(out.contains(want), "{want:?} missing from\n{out}");
    }
}

/// GNU timeout arms a POSIX timer (without one it falls back to whole-second alarms).
#[test]
fn coreutils_timeout_ends_its_command_on_time() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_dir(dir.path());
    with_libraries(&root, Path::new("/usr/bin/timeout"));
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for applet in ["sh", "sleep", "true"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    let timed = |script: &str| {
        let start = std::time::Instant::now();
        let got = sentry_run(&root, "/", &["/bin/sh", "-c", script], b"");
        (start.elapsed(), got)
    };
    let (baseline, _) = timed("true");
    // By path: busybox sh would run its own timeout applet for the bare name.
    let script = "for i in 1 2 3; do /bin/timeout 0.3 sleep 3; echo rc=$?; done";
    let (took, got) = timed(script);
    assert_eq!(String::from_utf8_lossy(&got.stdout), "rc=124\nrc=124\nrc=124\n");
    // Three 0.3 s timeouts; whole-second alarms would take 3 s.
    let spent = took.saturating_sub(baseline);
    // Margin for a loaded machine, still short of the alarms' 3 s.
    assert!(spent < std::time::Duration::from_millis(2500), "took {spent:?}");
    assert!(spent >= std::time::Duration::from_millis(850), "took {spent:?}");
}

#[test]
fn pseudo_terminals_behave_as_on_linux() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_dir(dir.path());
    compile("pty", &root.join("bin/pty"), &["-static"]);
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    // Linux is the oracle.
    let native = Command::new(root.join("bin/pty")).arg(root.join("bin/busybox")).output().unwrap();
    assert!(native.status.success());
    let got = sentry_run(&root, "/", &["/bin/pty", "/bin/busybox"], b"");
    assert_eq!(got.status.code(), Some(0), "{}", String::from_utf8_lossy(&got.stderr));
    assert_eq!(String::from_utf8_lossy(&got.stdout), String::from_utf8_lossy(&native.stdout));
    let out = String::from_utf8_lossy(&got.stdout);
    for want in [
        "echo: xy^H ^Hz\\r\\n",
        "tty: 33 111\\r\\n",
        "tty: /dev/pts/N\\r\\n",
        "tty: winch: 40 100\\r\\n",
        "tty: ^Cgot SIGINT\\r\\n",
        "session ends with: EIO",
        "new session takes the terminal: 1",
        "done",
    ] {
        assert!(out.contains(want), "{want:?} missing from\n{out}");
    }
}

/// A rootfs with Debian's Python (its standard library from the host as a read-only volume)
/// and busybox with links for `applets`. Returns the root, Python's path and the volume.
fn python_rootfs(dir: &Path, applets: &[&str]) -> (PathBuf, PathBuf, String) {
    // Installed by scripts/setup.
    let python = std::fs::canonicalize("/usr/bin/python3").expect("/usr/bin/python3");
    let stdlib = Path::new("/usr/lib").join(python.file_name().unwrap());
    let root = root_dir(dir);
    with_libraries(&root, &python);
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for applet in applets {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    (root, python, format!("{0}:{0}:ro", stdlib.display()))
}

/// Runs `tests/sentry/SCRIPT` with Python natively (busybox's applets first in PATH) and in
/// the Sentry; returns both outputs.
fn python_natively_and_in_sentry(
    root: &Path,
    python: &Path,
    volume: &str,
    script: &str,
    args: &[&str],
) -> (Output, Output) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sentry").join(script);
    std::fs::copy(&src, root.join(script)).unwrap();
    let path = format!("{}:/usr/bin:/bin", root.join("bin").display());
    let native = Command::new(python)
        .arg(&src)
        .args(args)
        .env("PATH", path)
        .env("TERM", "dumb")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(native.status.success(), "{}", String::from_utf8_lossy(&native.stderr));
    let bin = format!("/bin/{}", python.file_name().unwrap().to_string_lossy());
    let mut cmd = Command::new(common::sentry::ringfence());
    cmd.args(["sentry", "run", "--env", "TERM=dumb", "--rootfs"])
        .arg(root)
        .args(["--volume", volume, "--", &bin, &format!("/{script}")])
        .args(args);
    (native, common::sentry::run_with_input(cmd, b""))
}

/// Debian's Python: os.openpty and pty.spawn (forkpty, login_tty, a copy loop that ends on the
/// master's EIO).
#[test]
fn python_pty_spawn_runs_a_shell_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let (root, python, volume) = python_rootfs(dir.path(), &[]);
    // The host's busybox natively: the same binary as the rootfs's.
    let (native, got) =
        python_natively_and_in_sentry(&root, &python, &volume, "ptyspawn.py", &["/bin/busybox"]);
    assert_eq!(got.status.code(), Some(0), "{}", String::from_utf8_lossy(&got.stderr));
    assert_eq!(String::from_utf8_lossy(&got.stdout), String::from_utf8_lossy(&native.stdout));
    assert!(
        String::from_utf8_lossy(&got.stdout)
            .contains(r"spawn output: b'24 80\r\n/dev/pts/N\r\nspawned\r\n'"),
        "{}",
        String::from_utf8_lossy(&got.stdout)
    );
}

/// An interactive Debian bash on a pty, typed at: prompts, ^C to a foreground job, jobs (one
/// stopped by SIGTTIN for reading the terminal from the background, then brought back).
#[test]
fn interactive_bash_on_a_pty_does_job_control() {
    let dir = tempfile::tempdir().unwrap();
    let (root, python, volume) = python_rootfs(dir.path(), &["sleep", "sed", "tty", "cat"]);
    with_libraries(&root, Path::new("/bin/bash"));
    let (native, got) =
        python_natively_and_in_sentry(&root, &python, &volume, "bash_interactive.py", &[]);
    assert_eq!(got.status.code(), Some(0), "{}", String::from_utf8_lossy(&got.stderr));
    assert_eq!(String::from_utf8_lossy(&got.stdout), String::from_utf8_lossy(&native.stdout));
    let out = String::from_utf8_lossy(&got.stdout);
    for want in [
        "^C\nPROMPT> echo after-int $?\nafter-int 130\n",
        "[1]+  Running",
        "[1]+  Stopped                 cat\n",
        "fg-done 0",
        "status 0",
    ] {
        assert!(out.contains(want), "{want:?} missing from\n{out}");
    }
}

/// Stdio on a host terminal (util-linux's `script` provides one): the tty ioctls pass through
/// without writing past the kernel's structures, and /proc names the terminal.
#[test]
fn stdio_on_a_host_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_dir(dir.path());
    compile("hosttty", &root.join("bin/hosttty"), &["-static"]);
    let in_script = |command: String| {
        let out = Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("script (util-linux)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let native = in_script(root.join("bin/hosttty").display().to_string());
    let got = in_script(format!(
        "{} sentry run --rootfs {} -- /bin/hosttty",
        common::sentry::ringfence().display(),
        root.display()
    ));
    assert_eq!(got, native);
    assert!(got.contains("nothing written past the kernel's termios: 1"), "{got}");
}

/// inotify with glibc and musl: every event, error, the record format, blocking and
/// interrupted reads, readiness and the overflow event, as Linux reports them.
#[test]
fn inotify_reports_file_events_as_on_linux() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_dir(dir.path());
    compile("inotify", &root.join("bin/inotify"), &["-static"]);
    compile_with("musl-gcc", "inotify", &root.join("bin/inotify-musl"), &["-static"]);
    let native = Command::new(root.join("bin/inotify")).output().unwrap();
    assert!(native.status.success());
    let native = String::from_utf8_lossy(&native.stdout).into_owned();
    for program in ["/bin/inotify", "/bin/inotify-musl"] {
        let got = sentry_run(&root, "/", &[program], b"");
        assert_eq!(got.status.code(), Some(0), "{}", String::from_utf8_lossy(&got.stderr));
        assert_eq!(String::from_utf8_lossy(&got.stdout), native, "{program}");
    }
    for want in [
        "  wd=1 MOVED_TO cookie=same name=c",
        "  wd=1 DELETE_SELF cookie=0",
        "read 48: len=32 padded-with-nul=1",
        "blocking read 32: CREATE name=from-child",
        "blocking read interrupted: -1 EINTR",
        "overflow: events=max+1 overflows=1 last=1",
        "done",
    ] {
        assert!(native.contains(want), "{want:?} missing from\n{native}");
    }
}

/// A root with tests/sentry/sysv_ipc.c built static (glibc) as /bin/sysv_ipc.
fn sysv_ipc_root(dir: &Path) -> PathBuf {
    let root = root_dir(dir);
    compile("sysv_ipc", &root.join("bin/sysv_ipc"), &["-static"]);
    root
}

/// The output of /bin/sysv_ipc run natively in a new IPC namespace (as a sandbox is one, and
/// so that what it changes stays there).
fn sysv_ipc_native(root: &Path, args: &[&str]) -> String {
    let out = Command::new("unshare")
        .arg("--ipc")
        .arg(root.join("bin/sysv_ipc"))
        .args(args)
        .output()
        .expect("unshare (util-linux)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// System V IPC with glibc and musl: shared memory across fork, exit and IPC_RMID while
/// attached, semaphores (blocking, wait order, SEM_UNDO at exit, EINTR, EIDRM), message queues
/// (type selection, MSG_NOERROR, MSG_COPY, blocking both ways), permissions, limits and
/// errors, as Linux reports them.
#[test]
fn sysv_ipc_behaves_as_on_linux() {
    let dir = tempfile::tempdir().unwrap();
    let root = sysv_ipc_root(dir.path());
    compile_with("musl-gcc", "sysv_ipc", &root.join("bin/sysv_ipc-musl"), &["-static"]);
    let native = sysv_ipc_native(&root, &[]);
    for program in ["/bin/sysv_ipc", "/bin/sysv_ipc-musl"] {
        let got = sentry_run(&root, "/", &[program], b"");
        assert_eq!(got.status.code(), Some(0), "{}", String::from_utf8_lossy(&got.stderr));
        assert_eq!(String::from_utf8_lossy(&got.stdout), native, "{program}");
    }
    for want in [
        "shm ids: 0 1 2",
        "maps: rw-s /SYSV00000000 (deleted)",
        "after exec: nattch=1",
        "parent sees: 'from child' nattch after child exit=1",
        "two attaches, one split: nattch=4",
        "removed but attached: key=0 mode=1600 nattch=1 data='kept'",
        "gone after last detach: -1 EINVAL",
        "child's semop: 0, value now 0, pid is child 1",
        "woken 0: A",
        "after child exit sem1=2 (undone), pid is child 1",
        "interrupted semop: -1 EINTR",
        "waiter after removal: EIDRM",
        "child got: 5 type=7 'seven'",
        "cut to fit: 2 type=3 'th'",
        "blocked sender: 0",
        "done",
    ] {
        assert!(native.contains(want), "{want:?} missing from\n{native}");
    }
}

/// The IPC limits written under /proc/sys/kernel: values checked as Linux checks them, what
/// they then allow or refuse, shm_rmid_forced, and that another user may not write them.
/// Linux in a new IPC namespace (`unshare --ipc`, so the host's limits stay) is the oracle.
#[test]
fn ipc_sysctls_are_written_and_enforced_as_on_linux() {
    let dir = tempfile::tempdir().unwrap();
    let root = sysv_ipc_root(dir.path());
    let native = sysv_ipc_native(&root, &["sysctl"]);
    let got = sentry_run(&root, "/", &["/bin/sysv_ipc", "sysctl"], b"");
    assert_eq!(got.status.code(), Some(0), "{}", String::from_utf8_lossy(&got.stderr));
    assert_eq!(String::from_utf8_lossy(&got.stdout), native);
    // A sandbox's starting limits are checked the same way: a bad one starts nothing.
    for bad in ["kernel.shmmax=lots", "kernel.msgmni=40000", "kernel.hostname=x"] {
        let out = Command::new(common::sentry::ringfence())
            .args(["sentry", "run", "--rootfs"])
            .arg(&root)
            .args(["--sysctl", bad, "--", "/bin/sysv_ipc"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && out.stdout.is_empty(), "{bad}: {stderr}");
        assert!(stderr.contains(bad.split('=').next().unwrap()), "{bad}: {stderr}");
    }
    for want in [
        "shmget past shmmax: -1 EINVAL",
        "write sem=1 2 3 40000: ERANGE",
        "new queue qbytes=50",
        "forced removal at last detach: -1 EINVAL",
        "orphan kept while not forced: 0 0",
        "orphan destroyed when forced: -1 EINVAL",
        "open shmmax for writing: EACCES",
        "done",
    ] {
        assert!(native.contains(want), "{want:?} missing from\n{native}");
    }
}

/// Root's power over other users' IPC objects and the limits comes from capabilities:
/// CAP_IPC_OWNER, CAP_SYS_ADMIN, CAP_SYS_RESOURCE. With the capabilities this test has on the
/// host the Sentry agrees with Linux; without any of them each step is refused.
#[test]
fn ipc_privileges_come_from_capabilities() {
    let dir = tempfile::tempdir().unwrap();
    let root = sysv_ipc_root(dir.path());
    let native = sysv_ipc_native(&root, &["caps"]);
    assert!(native.ends_with("done\n"), "{native}");
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let effective = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap();
    let caps = [("CAP_IPC_OWNER", 15), ("CAP_SYS_ADMIN", 21), ("CAP_SYS_RESOURCE", 24)];
    let run = |drop: &[&str]| {
        let mut cmd = Command::new(common::sentry::ringfence());
        cmd.args(["sentry", "run", "--rootfs"]).arg(&root);
        for cap in drop {
            cmd.args(["--cap-drop", cap]);
        }
        cmd.args(["--", "/bin/sysv_ipc", "caps"]);
        String::from_utf8_lossy(&common::sentry::run_with_input(cmd, b"").stdout).into_owned()
    };
    let missing: Vec<&str> =
        caps.iter().filter(|(_, bit)| effective & (1 << bit) == 0).map(|(n, _)| *n).collect();
    assert_eq!(run(&missing), native, "with the host's capabilities (missing: {missing:?})");
    assert_eq!(
        run(&caps.map(|(n, _)| n)),
        "== caps\nshmat another user's segment: fail EACCES\n\
         IPC_STAT another user's queue: -1 EACCES\nIPC_SET qbytes past msgmnb: -1 EPERM\n\
         IPC_RMID another user's segment: -1 EPERM\nIPC_RMID another user's queue: -1 EPERM\n\
         write msgmnb=20000: EPERM\ndone\n"
    );
}

/// GNU tail -f follows a growing file through inotify: with a 60 s polling interval, the
/// line appended once tail has shown the file reaches it within 5 s only if the write was
/// reported. (On the overlay root tail would poll, as it does on Linux's overlayfs; /dev/shm
/// is tmpfs.)
#[test]
fn tail_follows_a_file_through_inotify() {
    let dir = tempfile::tempdir().unwrap();
    let root = common::sentry::busybox_rootfs(dir.path());
    let gnu = dir.path().join("gnu-tail");
    std::fs::copy("/usr/bin/tail", &gnu).unwrap();
    with_libraries(&root, &gnu);
    let script = |tail: &str| {
        format!(
            "echo one > log; {tail} -s 60 -f log > out & \
             while [ ! -s out ]; do sleep 0.05; done; echo two >> log; \
             for i in $(seq 100); do grep -q two out && break; sleep 0.05; done; \
             kill $!; cat out"
        )
    };
    let native = Command::new("/bin/sh")
        .args(["-c", &script(&gnu.to_string_lossy())])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&native.stdout), "one\ntwo\n");
    let got = sentry_run(&root, "/dev/shm", &["/bin/sh", "-c", &script("/bin/gnu-tail")], b"");
    assert_eq!(got.status.code(), Some(0), "{}", String::from_utf8_lossy(&got.stderr));
    assert_eq!(String::from_utf8_lossy(&got.stdout), "one\ntwo\n");
}
