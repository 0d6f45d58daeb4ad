//! Root filesystems as block images: a directory into an ext4 image (`mkfs.ext4 -d`), sized
//! for its content plus room for the file system itself.

use std::path::Path;
use std::process::Command;

use super::GuestError;

/// Bytes used by the files under `dir` (without following symlinks).
fn content_size(dir: &Path) -> Result<u64, GuestError> {
    let mut total = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in
            std::fs::read_dir(&d).map_err(GuestError::io(format!("reading {}", d.display())))?
        {
            let e = e.map_err(GuestError::io(format!("reading {}", d.display())))?;
            let m =
                e.metadata().map_err(GuestError::io(format!("reading {}", e.path().display())))?;
            total += m.len().div_ceil(4096) * 4096 + 256;
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    Ok(total)
}

/// Writes an ext4 image of `dir` to `out` (replacing it); `size_mib` 0 picks a size with
/// half again the content free, at least 16 MiB.
pub fn ext4_from_dir(dir: &Path, out: &Path, size_mib: u64) -> Result<u64, GuestError> {
    if !dir.is_dir() {
        return Err(GuestError::Input(format!("{} is not a directory", dir.display())));
    }
    let need = content_size(dir)?;
    let size = match size_mib {
        0 => (need + need / 2).div_ceil(1 << 20).max(16),
        n if n << 20 < need => {
            return Err(GuestError::Input(format!(
                "{} holds {} MiB; a {n} MiB image cannot",
                dir.display(),
                need.div_ceil(1 << 20)
            )));
        }
        n => n,
    };
    let _ = std::fs::remove_file(out);
    let o = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-E", "root_owner=0:0", "-L", "rootfs", "-d"])
        .arg(dir)
        .arg(out)
        .arg(format!("{size}M"))
        .output()
        .map_err(GuestError::io("running mkfs.ext4 (e2fsprogs)"))?;
    if !o.status.success() {
        let _ = std::fs::remove_file(out);
        return Err(GuestError::Tool(format!(
            "mkfs.ext4 failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        )));
    }
    Ok(size)
}

/// Fills `dir` with a minimal root: busybox-static at /bin/busybox, a link per applet in
/// /bin, and the directories programs expect.
pub fn busybox_root(dir: &Path) -> Result<(), GuestError> {
    const BUSYBOX: &str = "/bin/busybox";
    let body = std::fs::read(BUSYBOX)
        .map_err(GuestError::io(format!("reading {BUSYBOX} (busybox-static)")))?;
    if !super::agent::is_static_elf(&body) {
        return Err(GuestError::Input(format!("{BUSYBOX} is not busybox-static")));
    }
    for d in ["bin", "etc", "dev", "proc", "sys", "tmp", "root"] {
        std::fs::create_dir_all(dir.join(d)).map_err(GuestError::io(format!("creating {d}")))?;
    }
    let target = dir.join("bin/busybox");
    std::fs::write(&target, &body).map_err(GuestError::io("copying busybox"))?;
    std::fs::set_permissions(&target, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .map_err(GuestError::io("making busybox executable"))?;
    let list = Command::new(BUSYBOX)
        .arg("--list")
        .output()
        .map_err(GuestError::io("running busybox --list"))?;
    for applet in String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter(|a| !a.contains('/') && *a != "busybox")
    {
        let _ = std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet));
    }
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")
        .map_err(GuestError::io("writing /etc/passwd"))?;
    std::fs::write(dir.join("etc/group"), "root:x:0:\n")
        .map_err(GuestError::io("writing /etc/group"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_becomes_an_ext4_image_holding_its_files() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/hostname"), "guest\n").unwrap();
        let img = t.path().join("root.img");
        assert_eq!(ext4_from_dir(&root, &img, 0).unwrap(), 16);
        assert_eq!(std::fs::metadata(&img).unwrap().len(), 16 << 20);
        // debugfs reads the image without mounting it.
        let o =
            Command::new("debugfs").arg("-R").arg("cat /etc/hostname").arg(&img).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&o.stdout), "guest\n");
        assert!(matches!(
            ext4_from_dir(&t.path().join("nope"), &img, 0),
            Err(GuestError::Input(_))
        ));
        std::fs::write(root.join("big"), vec![1u8; 3 << 20]).unwrap();
        assert!(matches!(ext4_from_dir(&root, &img, 2), Err(GuestError::Input(_))));
    }
}
