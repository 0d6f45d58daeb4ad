//! The one root filesystem every runtime runs the workloads from: busybox-static and its
//! applets, the workload program (`benches/overhead/work.c`, built static here), Debian's
//! sqlite3 shell with the libraries it loads, and a page for the HTTP server.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

const APPLETS: [&str; 6] = ["sh", "true", "sleep", "httpd", "gzip", "cat"];
/// The real application; absent, the `app` job is skipped with this path as the reason.
pub const SQLITE3: &str = "/usr/bin/sqlite3";

/// Fills `root` and returns whether the sqlite3 shell is in it.
pub fn build(root: &Path) -> anyhow::Result<bool> {
    for d in ["bin", "etc", "proc", "dev", "tmp", "sys", "data", "vol", "www", "usr/bin"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    // Every runtime's user writes there, whichever uid it maps to.
    set_mode(&root.join("data"), 0o1777)?;
    set_mode(&root.join("tmp"), 0o1777)?;
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))
        .context("busybox-static (scripts/setup installs it)")?;
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))?;
    }
    std::fs::write(root.join("etc/hostname"), "bench\n")?;
    std::fs::write(root.join("www/index.html"), "<html><body>ready</body></html>\n")?;
    compile_work(&root.join("bin/work"))?;
    let sqlite = Path::new(SQLITE3).exists();
    if sqlite {
        copy_with_libraries(Path::new(SQLITE3), root)?;
    }
    Ok(sqlite)
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn compile_work(out: &Path) -> anyhow::Result<()> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/overhead/work.c");
    let st = Command::new("cc")
        .args(["-O2", "-static", "-o"])
        .arg(out)
        .arg(&src)
        .status()
        .context("running cc (scripts/setup installs it)")?;
    if !st.success() {
        bail!("compiling {}", src.display());
    }
    Ok(())
}

/// Copies `binary` and every shared object `ldd` lists for it to the same paths under `root`.
fn copy_with_libraries(binary: &Path, root: &Path) -> anyhow::Result<()> {
    let out = Command::new("ldd").arg(binary).output().context("running ldd")?;
    if !out.status.success() {
        bail!("ldd {} failed", binary.display());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut files: Vec<PathBuf> = vec![binary.to_owned()];
    for line in text.lines() {
        // "name => /path (addr)" or "/path (addr)"; vdso lines name no file.
        let path = line.split("=>").last().and_then(|r| r.split_whitespace().next());
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            files.push(PathBuf::from(p));
        }
    }
    for f in files {
        let rel = f.strip_prefix("/").context("absolute path")?;
        let dest = root.join(rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(&f, &dest).with_context(|| format!("copying {}", f.display()))?;
    }
    Ok(())
}
