//! The guest kernel: Debian's `linux-source-6.1` configured by `allnoconfig` plus
//! `images/kernel/microvm.config`, compiled once per set of inputs.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ring::digest::{Context, SHA256};

use super::lock::Lock;
use super::{BuildProgress, GuestError};

/// The configuration fragment, applied on top of `allnoconfig`.
pub const CONFIG: &str = include_str!("../../kernel/microvm.config");
/// Patches applied to the source before configuring (`patch -p1`), in order: the smallest
/// changes that let the kernel run where the hardware cannot help (docs/kvm-host-notes.md).
pub const PATCHES: &[(&str, &str)] = &[(
    "0001-pvm-syscall-entry.patch",
    include_str!("../../kernel/patches/0001-pvm-syscall-entry.patch"),
)];
/// The kernel source tarball `linux-source-6.1` installs.
pub const SOURCE: &str = "/usr/src/linux-source-6.1.tar.xz";
/// What building needs from Debian.
const PACKAGES: &[&str] =
    &["linux-source-6.1", "make", "gcc", "bc", "flex", "bison", "libelf-dev", "xz-utils", "patch"];
/// Bumped when the way the kernel is built changes.
const BUILDER: &str = "1";
/// Compile steps of the last build, for the progress estimate before the first one.
const STEPS_GUESS: u64 = 1450;

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

/// Installs the source and the build tools when missing (as scripts/setup does).
fn ensure_packages(progress: &dyn BuildProgress) -> Result<(), GuestError> {
    let missing: Vec<&str> = PACKAGES.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    progress.step(&format!("installing {}", missing.join(" ")));
    let _ = Command::new("apt-get").args(["update", "-q"]).stdout(Stdio::null()).status();
    let st = Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null())
        .status()
        .map_err(GuestError::io("running apt-get"))?;
    if !st.success() {
        return Err(GuestError::Tool(format!(
            "apt-get install {} failed ({st})",
            missing.join(" ")
        )));
    }
    Ok(())
}

/// The cache key: the configuration, the source package's file, the compiler, the builder.
fn key() -> Result<String, GuestError> {
    let meta = std::fs::metadata(SOURCE).map_err(GuestError::io(format!("reading {SOURCE}")))?;
    let mtime = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
    let gcc = Command::new("gcc").arg("--version").output().map(|o| o.stdout).unwrap_or_default();
    let mut h = Context::new(&SHA256);
    let patches: Vec<u8> =
        PATCHES.iter().flat_map(|(n, p)| [n.as_bytes(), p.as_bytes()].concat()).collect();
    for part in [
        BUILDER.as_bytes(),
        CONFIG.as_bytes(),
        &patches,
        format!("{}:{mtime:?}", meta.len()).as_bytes(),
        &gcc,
    ] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part);
    }
    Ok(h.finish().as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect())
}

/// The `CONFIG_X=y` lines of the fragment that `.config` lacks (Kconfig drops an option
/// silently when its dependencies are not met).
pub fn missing_options(fragment: &str, config: &str) -> Vec<String> {
    fragment
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("CONFIG_") && l.ends_with("=y"))
        .filter(|l| !config.lines().any(|c| c.trim() == *l))
        .map(str::to_owned)
        .collect()
}

fn make(src: &Path, out: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("make");
    c.arg("-C").arg(src).arg(format!("O={}", out.display())).args(args);
    c
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(25)..].join("\n")
}

/// Builds the kernel (or finds it cached) and returns the bzImage; `vmlinux` (ELF, PVH entry)
/// and `config` lie beside it.
pub fn build(cache: &Path, progress: &dyn BuildProgress) -> Result<PathBuf, GuestError> {
    if !Path::new(SOURCE).exists() {
        ensure_packages(progress)?;
    }
    let key = key()?;
    let dir = cache.join(format!("kernel-{key}"));
    let bzimage = dir.join("bzImage");
    if bzimage.exists() {
        return Ok(bzimage);
    }
    let _lock = Lock::exclusive(&cache.join("kernel.lock"))?;
    if bzimage.exists() {
        return Ok(bzimage);
    }
    ensure_packages(progress)?;
    let work = cache.join(format!("kernel-work-{key}"));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)
        .map_err(GuestError::io(format!("creating {}", work.display())))?;
    let result = compile(&work, cache, progress);
    let outcome = result.and_then(|built| {
        let tmp = cache.join(format!("kernel-{key}.tmp"));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp)
            .map_err(GuestError::io(format!("creating {}", tmp.display())))?;
        for (from, to) in
            [("arch/x86/boot/bzImage", "bzImage"), ("vmlinux", "vmlinux"), (".config", "config")]
        {
            std::fs::copy(built.join(from), tmp.join(to))
                .map_err(GuestError::io(format!("copying {from}")))?;
        }
        std::fs::rename(&tmp, &dir).map_err(GuestError::io(format!("storing {}", dir.display())))
    });
    if outcome.is_ok() {
        prune_work_dirs(cache);
    }
    outcome.map(|()| bzimage)
}

/// Removes the work directories of builds: this one's, and those that interrupted or failed
/// builds left (a whole kernel tree each; a failure showed its log when it happened). Runs
/// under the build lock, so no other build is using one.
fn prune_work_dirs(cache: &Path) {
    let Ok(entries) = std::fs::read_dir(cache) else { return };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with("kernel-work-") {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn compile(work: &Path, cache: &Path, progress: &dyn BuildProgress) -> Result<PathBuf, GuestError> {
    progress.step(&format!("unpacking {SOURCE}"));
    let st = Command::new("tar")
        .arg("-xf")
        .arg(SOURCE)
        .arg("-C")
        .arg(work)
        .status()
        .map_err(GuestError::io("running tar"))?;
    if !st.success() {
        return Err(GuestError::Tool(format!("unpacking {SOURCE} failed ({st})")));
    }
    let src = work.join("linux-source-6.1");
    for (name, body) in PATCHES {
        progress.step(&format!("applying {name}"));
        let mut child = Command::new("patch")
            .args(["-p1", "--forward", "--quiet"])
            .current_dir(&src)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(GuestError::io("running patch"))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(body.as_bytes()).map_err(GuestError::io("feeding patch"))?;
        }
        let done = child.wait_with_output().map_err(GuestError::io("running patch"))?;
        if !done.status.success() {
            return Err(GuestError::Tool(format!(
                "{name} does not apply to {SOURCE}: {}{}",
                String::from_utf8_lossy(&done.stdout),
                String::from_utf8_lossy(&done.stderr)
            )));
        }
    }
    let out = work.join("build");
    let fragment = work.join("microvm.config");
    std::fs::write(&fragment, CONFIG).map_err(GuestError::io("writing the configuration"))?;
    progress.step("configuring (allnoconfig + images/kernel/microvm.config)");
    let log_path = work.join("build.log");
    let log = std::fs::File::create(&log_path).map_err(GuestError::io("creating the build log"))?;
    let st = make(&src, &out, &["allnoconfig"])
        .env("KCONFIG_ALLCONFIG", &fragment)
        .stdout(log.try_clone().map_err(GuestError::io("build log"))?)
        .stderr(log.try_clone().map_err(GuestError::io("build log"))?)
        .status()
        .map_err(GuestError::io("running make"))?;
    if !st.success() {
        return Err(GuestError::Tool(format!(
            "make allnoconfig failed ({st}):\n{}",
            tail(&log_path)
        )));
    }
    let config =
        std::fs::read_to_string(out.join(".config")).map_err(GuestError::io("reading .config"))?;
    let missing = missing_options(CONFIG, &config);
    if !missing.is_empty() {
        return Err(GuestError::Input(format!(
            "the kernel configuration dropped {} (unmet dependencies)",
            missing.join(", ")
        )));
    }
    let jobs = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    progress.step(&format!("compiling the kernel with {jobs} jobs"));
    let steps_file = cache.join("kernel-steps");
    let expected = std::fs::read_to_string(&steps_file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(STEPS_GUESS);
    let mut child = make(&src, &out, &[&format!("-j{jobs}"), "bzImage"])
        .stdout(Stdio::piped())
        .stderr(log.try_clone().map_err(GuestError::io("build log"))?)
        .spawn()
        .map_err(GuestError::io("running make"))?;
    let mut done = 0;
    let mut log = log;
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = writeln!(log, "{line}");
            if line.starts_with("  ") {
                done += 1;
                progress.advanced(done, expected.max(done));
            }
        }
    }
    let st = child.wait().map_err(GuestError::io("waiting for make"))?;
    if !st.success() {
        return Err(GuestError::Tool(format!(
            "compiling the kernel failed ({st}); the build is kept in {}:\n{}",
            work.display(),
            tail(&log_path)
        )));
    }
    let _ = std::fs::write(steps_file, done.to_string());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_the_configuration_dropped_are_named() {
        let fragment = "# c\nCONFIG_A=y\nCONFIG_B=y\nCONFIG_C=n\nCONFIG_S=\"x\"\n";
        assert_eq!(
            missing_options(fragment, "CONFIG_A=y\n# CONFIG_B is not set\n"),
            vec!["CONFIG_B=y"]
        );
        assert!(missing_options(fragment, "CONFIG_A=y\nCONFIG_B=y\n").is_empty());
    }
}
