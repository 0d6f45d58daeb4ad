//! File metadata in the Sentry, which keeps what it learns of the root filesystem (names,
//! attributes, failed lookups): a walk over a real tree shows what Linux shows, and the
//! sandbox's own changes show at once (no stale names or attributes). Linux is the oracle: the
//! same commands run natively in a chroot.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::sentry::{busybox_rootfs, run_with_input, sentry_run, with_libraries};

/// Runs `argv` natively, chrooted into a copy of `root` (the Sentry never changes `root`).
fn native(root: &Path, argv: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("root");
    let st = Command::new("cp").arg("-a").arg(root).arg(&copy).status().unwrap();
    assert!(st.success());
    native_in_place(&copy, argv)
}

/// Runs `argv` natively, chrooted into `root` itself (for commands that change nothing, so
/// that inode numbers compare equal).
fn native_in_place(root: &Path, argv: &[&str]) -> Output {
    let mut cmd = Command::new("/usr/sbin/chroot");
    cmd.arg(root).args(argv).env_clear().env("PATH", "/bin");
    run_with_input(cmd, b"")
}

fn copy_tree(from: &str, root: &Path) {
    let dest = root.join(from.trim_start_matches('/'));
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    let st = Command::new("cp").arg("-a").arg(from).arg(&dest).status().unwrap();
    assert!(st.success(), "copying {from}");
}

/// A rootfs holding GNU find and part of the host's /usr: headers, a Python package with its
/// byte code, library symlinks, and a fifo.
fn usr_tree(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    with_libraries(&root, Path::new("/usr/bin/find"));
    copy_tree("/usr/include/linux", &root);
    copy_tree("/usr/lib/python3.11/email", &root);
    let libs = root.join("usr/lib/links");
    std::fs::create_dir_all(&libs).unwrap();
    let mut links = 0;
    for e in std::fs::read_dir("/usr/lib/x86_64-linux-gnu").unwrap() {
        let e = e.unwrap();
        if links < 40 && e.file_type().unwrap().is_symlink() {
            let target = std::fs::read_link(e.path()).unwrap();
            std::os::unix::fs::symlink(target, libs.join(e.file_name())).unwrap();
            links += 1;
        }
    }
    let st = Command::new("mkfifo").arg(root.join("usr/lib/links/fifo")).status().unwrap();
    assert!(st.success());
    root
}

fn sorted_stdout(out: &Output) -> Vec<String> {
    let mut lines: Vec<String> =
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

#[test]
fn a_walk_over_a_real_tree_shows_what_linux_shows() {
    let dir = tempfile::tempdir().unwrap();
    let root = usr_tree(dir.path());
    // Path, type, mode, size, links, owner, blocks, inode, modification time, link target.
    let argv = ["/bin/find", "/usr", "-printf", "%p %y %m %s %n %U %G %b %i %T@ %l\n"];
    let want = native_in_place(&root, &argv);
    assert_eq!(want.status.code(), Some(0), "{}", String::from_utf8_lossy(&want.stderr));
    let start = std::time::Instant::now();
    let got = sentry_run(&root, "/", &argv, b"");
    eprintln!("find over {} entries in {:.1?}", sorted_stdout(&want).len(), start.elapsed());
    assert_eq!(got.status.code(), Some(0), "{}", String::from_utf8_lossy(&got.stderr));
    let (want, got) = (sorted_stdout(&want), sorted_stdout(&got));
    assert!(want.len() > 800, "{} entries", want.len());
    let differ: Vec<_> = want.iter().zip(&got).filter(|(w, g)| w != g).take(10).collect();
    assert!(
        differ.is_empty() && want.len() == got.len(),
        "{} vs {}: {differ:#?}",
        want.len(),
        got.len()
    );

    // A second walk in the same sandbox, answered from what the first one learnt, and a
    // walk that changes nothing but reads every file.
    let script = "find /usr -printf '%p %s %m\\n' > /tmp/1; find /usr -printf '%p %s %m\\n' > /tmp/2; \
                  cmp /tmp/1 /tmp/2 && echo same; find /usr -type f -exec cat {} + | wc -c";
    let mut bb = root.clone();
    bb.push("bin");
    std::fs::copy("/bin/busybox", bb.join("busybox")).unwrap();
    for applet in ["sh", "cmp", "echo", "cat", "wc"] {
        std::os::unix::fs::symlink("busybox", bb.join(applet)).unwrap();
    }
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    let argv = ["/bin/sh", "-c", script];
    let (want, got) = (native(&root, &argv), sentry_run(&root, "/", &argv, b""));
    assert_eq!(String::from_utf8_lossy(&got.stdout), String::from_utf8_lossy(&want.stdout));
    assert!(String::from_utf8_lossy(&got.stdout).starts_with("same\n"));
}

/// Each step prints what lookups and stat see right after a change. (A directory's size is
/// left out: directories the sandbox makes are sized as on tmpfs, not as on the host's disk.)
const CHANGES: &str = r#"
cd /data
show() { for f in "$@"; do if [ -d "$f" ]; then stat -c '%n %a %h %F' "$f"; elif [ -e "$f" ] || [ -L "$f" ]; then stat -c '%n %s %a %h %F' "$f"; else echo "$f absent"; fi; done; }
show nothere; ls
echo hi > nothere; show nothere; ls
mv a z; show a z; ls
rm z; show z; ls
echo again > z; cat z; show z
mv z sub/z2; show z sub/z2; ls sub
mv sub sub2; show sub sub2 sub2/z2 sub2/deep; ls sub2
mkdir d1; show d1 .; mkdir d1/inner; show d1; rmdir d1/inner; rmdir d1; show d1 .
chmod 600 b; show b
touch -d '2001-02-03 04:05:06' b; stat -c '%n %Y' b
echo more >> b; show b
truncate -s 3 b; show b; cat b; echo
ln b hard; show b hard
ln -s b soft; readlink soft; show soft
rm hard; show b hard
rm -r sub2; show sub2 sub2/z2; ls
for i in 1 2 3; do touch new$i; done; rm new2; ls
mkdir -p x/y/z; echo deep > x/y/z/f; find x | sort; rm -r x; show x x/y/z/f
find /data | sort
"#;

#[test]
fn the_sandbox_changes_show_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = busybox_rootfs(dir.path());
    let data = root.join("data");
    std::fs::create_dir_all(data.join("sub/deep")).unwrap();
    std::fs::write(data.join("a"), "alpha\n").unwrap();
    std::fs::write(data.join("b"), "bravo\n").unwrap();
    std::fs::write(data.join("sub/s"), "sierra\n").unwrap();
    let argv = ["/bin/sh", "-c", CHANGES];
    let want = native(&root, &argv);
    let got = sentry_run(&root, "/", &argv, b"");
    let (w, g) = (String::from_utf8_lossy(&want.stdout), String::from_utf8_lossy(&got.stdout));
    assert_eq!(g, w, "sentry stderr:\n{}", String::from_utf8_lossy(&got.stderr));
    assert_eq!(got.status.code(), want.status.code());
    // Sanity: the script really saw a failed lookup turn into a file, and a rename.
    assert!(w.contains("nothere absent\n") && w.contains("nothere 3 644 1 regular file\n"), "{w}");
    assert!(w.contains("a absent\nz 6 644 1 regular file\n"), "{w}");
    // The host's copy is untouched.
    assert_eq!(std::fs::read_to_string(data.join("a")).unwrap(), "alpha\n");
    assert!(!data.join("nothere").exists());
}
