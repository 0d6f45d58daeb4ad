//! Scripts of `tests/python/` run by the Python clients `scripts/setup` installs, each under a
//! watchdog that kills it and shows what it printed when it stalls.

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The venv `scripts/setup` fills from `tests/python/requirements.txt`.
pub fn interpreter() -> PathBuf {
    let env = std::env::var_os("RINGFENCE_PYTHON_ENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| images::cache_root().join("python"));
    let python = env.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: scripts/setup installs the Python test clients",
        python.display()
    );
    python
}

/// Runs `tests/python/<script>` with `KUBECONFIG` set; panics with its output when it fails
/// or runs longer than `limit`. Returns what it printed on stdout.
pub fn run(script: &str, kubeconfig: &Path, limit: Duration) -> String {
    run_with(script, &[], &[("KUBECONFIG", kubeconfig.as_os_str())], limit)
}

/// Like [`run`], with arguments and environment of the caller's choosing.
pub fn run_with(script: &str, args: &[&OsStr], envs: &[(&str, &OsStr)], limit: Duration) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python").join(script);
    let mut child = Command::new(interpreter())
        .arg("-u")
        .arg(&path)
        .args(args)
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", path.display()));
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for python") {
            break Some(status);
        }
        if start.elapsed() > limit {
            // SAFETY: signalling our own child: SIGINT makes Python print where it was.
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            std::thread::sleep(Duration::from_secs(2));
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (out, err) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
    match status {
        Some(s) if s.success() => {
            print!("{out}");
            out
        }
        Some(s) => panic!("{script} failed ({s}):\n{out}\n{err}"),
        None => panic!("{script} stalled for {limit:?} and was stopped:\n{out}\n{err}"),
    }
}
