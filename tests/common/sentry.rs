//! Running programs in Sentry sandboxes over a busybox rootfs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub fn ringfence() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ringfence"))
}

/// A root filesystem holding Debian's static busybox and a link per applet, as /bin.
pub fn busybox_rootfs(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox"))
        .expect("busybox-static is installed by scripts/setup");
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
        }
    }
    std::fs::write(root.join("etc/hostname"), "sandbox\n").unwrap();
    root
}

/// Runs `argv` in a Sentry sandbox over `rootfs`, feeding `stdin`.
pub fn sentry_run(rootfs: &Path, cwd: &str, argv: &[&str], stdin: &[u8]) -> Output {
    let mut cmd = Command::new(ringfence());
    cmd.args(["sentry", "run", "--rootfs"]).arg(rootfs).args(["--cwd", cwd, "--"]).args(argv);
    run_with_input(cmd, stdin)
}

/// How long one sandboxed program may run before the test fails (a hung Sentry must fail the
/// test, not stall the suite).
const RUN_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

pub fn run_with_input(mut cmd: Command, stdin: &[u8]) -> Output {
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let _ = input.write_all(&data);
    });
    // A watchdog: after the limit, the Sentry is asked what each of its tasks is doing (it
    // prints that to the stderr shown below), then SIGKILLed (it may ignore SIGTERM when
    // wedged).
    let pid = child.id() as i32;
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        let fired = done_rx.recv_timeout(RUN_LIMIT).is_err();
        if fired {
            // SAFETY: signalling our own child, which has not been reaped (we hold its wait).
            unsafe { libc::kill(pid, libc::SIGRTMIN() + 3) };
            std::thread::sleep(std::time::Duration::from_secs(1));
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        fired
    });
    let out = child.wait_with_output().unwrap();
    let _ = done_tx.send(());
    let _ = writer.join();
    if watchdog.join().unwrap_or(false) {
        panic!(
            "the sandbox ran longer than {RUN_LIMIT:?} and was killed; its output:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Compiles `tests/sentry/NAME.c` into `out`, with `extra` flags for cc.
pub fn compile(name: &str, out: &Path, extra: &[&str]) {
    compile_with("cc", name, out, extra)
}

/// Compiles `tests/sentry/NAME.c` into `out` with the compiler `cc` (e.g. musl-gcc, which
/// scripts/setup installs).
pub fn compile_with(cc: &str, name: &str, out: &Path, extra: &[&str]) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sentry").join(format!("{name}.c"));
    let st = Command::new(cc)
        .args(["-O2", "-w"])
        .args(extra)
        .arg("-o")
        .arg(out)
        .arg(&src)
        .status()
        .unwrap_or_else(|e| panic!("{cc}: {e} (scripts/setup installs it)"));
    assert!(st.success(), "compiling {name}.c with {cc}");
}

/// A `ringfence sentry sandbox` (an empty pod sandbox) and its control socket, killed when
/// dropped.
pub struct PodSandbox {
    child: std::process::Child,
    pub socket: PathBuf,
}

impl PodSandbox {
    pub fn start(dir: &Path) -> PodSandbox {
        let socket = dir.join("control.sock");
        let child = Command::new(ringfence())
            .args(["sentry", "sandbox", "--control"])
            .arg(&socket)
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ringfence sentry sandbox");
        let start = std::time::Instant::now();
        while !socket.exists() {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(10),
                "control socket never appeared"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        PodSandbox { child, socket }
    }

    /// `ringfence sentry exec --control SOCKET ARGS...`, to be run.
    pub fn exec(&self, args: &[&str]) -> Command {
        let mut c = Command::new(ringfence());
        c.args(["sentry", "exec", "--control"]).arg(&self.socket).args(args);
        c
    }
}

impl Drop for PodSandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Copies a host program into `root/bin` with the shared libraries `ldd` names (at their
/// host paths), so it runs in a sandbox on that root.
pub fn with_libraries(root: &Path, binary: &Path) {
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy(binary, root.join("bin").join(binary.file_name().unwrap())).unwrap();
    let ldd = Command::new("ldd").arg(binary).output().unwrap();
    for word in String::from_utf8_lossy(&ldd.stdout).split_whitespace() {
        if word.starts_with('/') {
            let dest = root.join(word.trim_start_matches('/'));
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::copy(word, &dest).unwrap();
        }
    }
}
