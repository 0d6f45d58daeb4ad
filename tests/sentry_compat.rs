//! Compatibility: Debian's busybox-static applets run inside the Sentry and natively (chroot
//! into a copy of the same root filesystem); stdout and exit status must match. Linux is the
//! oracle.

mod common;

use std::path::Path;
use std::process::Command;

use common::sentry::{busybox_rootfs, run_with_input, sentry_run};

/// Fixture files with fixed contents and timestamps so listings compare equal.
fn fixture(dir: &Path) -> std::path::PathBuf {
    let root = busybox_rootfs(dir);
    for d in ["proc", "dev", "data/sub"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("data/fruits"), "banana\napple\ncherry\napple\ndate\nbanana\n")
        .unwrap();
    std::fs::write(root.join("data/table"), "id name qty\n1 apple 3\n2 pear 7\n3 fig 12\n")
        .unwrap();
    std::fs::write(root.join("data/sub/note"), "nested file\n").unwrap();
    std::fs::write(root.join("data/script.sh"), "#!/bin/sh\necho \"script args: $*\"\nexit 3\n")
        .unwrap();
    let status = Command::new("/bin/busybox")
        .args(["sh", "-c"])
        .arg(format!(
            "chmod 755 {r}/data/script.sh && chmod 640 {r}/data/table && touch -h -d '2021-02-03 04:05:06' {r}/data/* {r}/data/sub/* {r}/data",
            r = root.display()
        ))
        .status()
        .unwrap();
    assert!(status.success());
    root
}

/// The cases: a shell script each, covering the applets and shell features the issue names.
const CASES: &[(&str, &str)] = &[
    ("echo", "echo hello world; echo -n no-newline; echo; echo -e 'a\\tb'"),
    ("printf", "printf '%s|%5d|%-4s|%x|%.2f\\n' str 42 ab 255 3.14159"),
    ("pipeline", "cat /data/fruits | sort | uniq -c | sort -rn | head -2"),
    (
        "redirections",
        "echo one > /tmp/f; echo two >> /tmp/f; cat < /tmp/f; wc -l < /tmp/f; ls /nonexistent 2>/dev/null || echo missing; echo err >&2",
    ),
    ("subshell", "x=outer; (x=inner; echo $x); echo $x; (cd /data && pwd); pwd"),
    (
        "command substitution",
        "n=$(wc -l < /data/fruits); echo lines=$n; echo $(echo nested $(echo deep))",
    ),
    (
        "loops",
        "for i in 1 2 3; do echo for $i; done; i=0; while [ $i -lt 3 ]; do i=$((i+1)); echo while $i; done; until [ $i -eq 0 ]; do i=$((i-1)); done; echo done $i",
    ),
    (
        "functions and case",
        "f() { case $1 in a*) echo starts-a;; *) echo other;; esac; return 4; }; f apple; f pear; echo rc=$?",
    ),
    ("traps", "trap 'echo got USR1' USR1; trap 'echo exiting' EXIT; kill -USR1 $$; echo after"),
    ("background jobs", "(sleep 0.2; echo job1) & (echo job2) & wait; echo all done"),
    ("wait status", "sh -c 'exit 5' & wait $!; echo status=$?"),
    ("ls -la", "ls -la /data; ls -l /data/sub"),
    ("cat", "cat /data/fruits /data/sub/note; cat -n /data/table"),
    ("wc", "wc /data/fruits; wc -c /data/table; wc -w < /data/table"),
    (
        "sort and uniq",
        "sort /data/fruits | uniq; sort -r /data/fruits | uniq -d; sort -k3 -n /data/table",
    ),
    (
        "grep",
        "grep -n an /data/fruits; grep -c apple /data/fruits; grep -v a /data/fruits; grep -q zzz /data/fruits; echo rc=$?",
    ),
    (
        "sed",
        "sed -n '2,3p' /data/fruits; sed 's/a/A/g' /data/fruits | head -3; echo hello | sed -e 's/l\\+/L/'",
    ),
    ("awk", "awk 'NR>1 { s += $3; print $2 } END { print \"total\", s }' /data/table"),
    (
        "find",
        "find /data | sort; find /data -type f -name '*.sh'; find /data -newer /data/fruits | wc -l",
    ),
    ("xargs", "printf 'a\\nb\\nc\\n' | xargs echo; seq 5 | xargs -n 2 echo"),
    (
        "head and tail",
        "head -n 2 /data/fruits; tail -n 2 /data/fruits; tail -c 5 /data/table; head -c 3 /data/fruits; echo",
    ),
    (
        "tr and cut",
        "tr a-z A-Z < /data/fruits | head -2; cut -d' ' -f2 /data/table; echo 'a:b:c' | cut -d: -f1,3",
    ),
    (
        "cp mv rm",
        "cp /data/fruits /tmp/x; mv /tmp/x /tmp/y; ls /tmp; cmp /data/fruits /tmp/y && echo same; rm /tmp/y; ls /tmp | wc -l",
    ),
    (
        "ln -s",
        "ln -s /data/fruits /tmp/link; readlink /tmp/link; head -1 /tmp/link; ln -s ../data /tmp/rel; ls /tmp/rel/sub",
    ),
    (
        "mkdir -p and rmdir",
        "mkdir -p /tmp/a/b/c; find /tmp/a | sort; rmdir /tmp/a/b/c; rmdir /tmp/a 2>/dev/null || echo not-empty",
    ),
    (
        "touch and stat",
        "touch -d '2020-01-02 03:04:05' /tmp/t; stat -c '%n %s %a %Y' /tmp/t /data/fruits /data/table /data/script.sh",
    ),
    ("date", "date -u -d @86400 '+%Y-%m-%d %H:%M:%S'; date -u -d '2020-02-29 12:00:00' +%s"),
    ("env", "env -i A=1 B=two /bin/env | sort; A=x sh -c 'echo $A'"),
    ("sleep", "sleep 0.1; echo slept"),
    ("kill", "sleep 10 & p=$!; kill -TERM $p; wait $p; echo status=$?"),
    ("timeout", "timeout 1 sleep 5; echo status=$?; timeout 5 true; echo status=$?"),
    (
        "tar",
        "cd /data && tar cf /tmp/d.tar fruits sub && tar tf /tmp/d.tar && mkdir /tmp/x && cd /tmp/x && tar xf /tmp/d.tar && cat sub/note",
    ),
    (
        "gzip and gunzip",
        "cp /data/fruits /tmp/f && gzip -9 /tmp/f && ls /tmp && gunzip /tmp/f.gz && cmp /tmp/f /data/fruits && echo roundtrip; echo data | gzip | gunzip",
    ),
    ("sha256sum", "sha256sum /data/fruits /data/table; echo -n abc | sha256sum"),
    ("seq", "seq 3; seq 2 2 9; seq -s, 5"),
    ("expr", "expr 6 \\* 7; expr length hello; expr 5 \\> 3; expr substr abcdef 2 3"),
    (
        "test",
        "test -f /data/fruits && echo file; [ -d /data/sub ] && echo dir; [ -x /data/script.sh ] && echo exec; [ 3 -gt 2 ]; echo $?; [ -z '' ] && echo empty",
    ),
    ("shebang scripts", "/data/script.sh a b; echo rc=$?"),
    ("exit status", "false; echo $?; true; echo $?; (exit 42); echo $?"),
    ("here documents", "cat <<EOF\nline one\n$((1+2)) computed\nEOF"),
    ("read", "printf 'x y\\nz\\n' | while read a b; do echo \"[$a][$b]\"; done"),
    ("umask", "umask 027; touch /tmp/m; stat -c %a /tmp/m; umask"),
    (
        "nice",
        "nice; nice -n 5 nice; nice -n 3 sh -c 'nice -n 2 nice'; nice -n 50 nice; nice -n -3 nice",
    ),
    (
        "flock",
        "f=/tmp/lock; touch $f; flock $f -c 'sleep 1' & sleep 0.3; flock -n $f -c true; echo held rc=$?; flock -s -n $f true; echo shared rc=$?; wait; flock -n $f -c true; echo free rc=$?",
    ),
    (
        "flock serializes writers",
        "echo 0 > /tmp/n; for w in 1 2 3 4; do (for i in 1 2 3 4 5 6 7 8 9 10; do flock /tmp/n.lock sh -c 'n=$(cat /tmp/n); sleep 0.01; echo $((n+1)) > /tmp/n'; done) & done; wait; cat /tmp/n",
    ),
];

fn native(root: &Path, script: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("root");
    // The native run needs the device nodes the Sentry provides.
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cp -a {r} {c} && mknod {c}/dev/null c 1 3 && mknod {c}/dev/zero c 1 5 && mknod {c}/dev/urandom c 1 9 && chmod 666 {c}/dev/*",
            r = root.display(),
            c = copy.display()
        ))
        .status()
        .unwrap();
    assert!(st.success());
    let mut cmd = Command::new("chroot");
    cmd.arg(&copy)
        .args(["/bin/sh", "-c", script])
        .env_clear()
        .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    run_with_input(cmd, b"")
}

#[test]
fn busybox_applets_match_native_linux() {
    let dir = tempfile::tempdir().unwrap();
    let root = fixture(dir.path());
    let mut failures = Vec::new();
    let start = std::time::Instant::now();
    for (name, script) in CASES {
        let want = native(&root, script);
        let got = sentry_run(&root, "/", &["/bin/sh", "-c", script], b"");
        let (w, g) = (String::from_utf8_lossy(&want.stdout), String::from_utf8_lossy(&got.stdout));
        if w != g || want.status.code() != got.status.code() {
            failures.push(format!(
                "case {name:?}: native exit {:?}, sentry exit {:?}\n--- native stdout\n{w}--- sentry stdout\n{g}--- sentry stderr\n{}",
                want.status.code(),
                got.status.code(),
                String::from_utf8_lossy(&got.stderr)
            ));
        }
    }
    eprintln!("{} compatibility cases in {:.1?}", CASES.len(), start.elapsed());
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}
