//! The project's guest in the nested-SVM lane, for the tests that boot it: its kernel and
//! agent initramfs, a busybox disk, and `ringfence dev nested-run --ringfence` with them
//! inside (at /guest/bzImage, /guest/initrd, /guest/rootfs.img).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn ringfence() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ringfence"))
}

/// The guest kernel and the agent's initramfs (`ringfence image kernel`: built once, cached).
pub fn guest_image() -> (String, String) {
    let out = ringfence().args(["image", "kernel"]).output().expect("run ringfence image kernel");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("paths");
    let mut lines = text.lines().map(str::to_owned);
    (lines.next().expect("kernel"), lines.next().expect("initramfs"))
}

/// An ext4 image of a busybox root.
pub fn busybox_disk(dir: &Path) -> PathBuf {
    let img = dir.join("rootfs.img");
    let out = ringfence().args(["image", "rootfs", "--busybox", "-o"]).arg(&img).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    img
}

pub const CMDLINE: &str = "console=ttyS0 reboot=k panic=1 io_delay=none";

/// `ringfence dev nested-run --ringfence` with the guest files inside: (status, stdout, stderr).
pub fn lane(dir: &Path, extra: &[&str], args: &[&str]) -> (Option<i32>, String, String) {
    let (kernel, initrd) = guest_image();
    let disk = busybox_disk(dir);
    let out = ringfence()
        .args([
            "dev",
            "nested-run",
            "--ringfence",
            "--timeout",
            "300",
            "--vmm",
            env!("CARGO_BIN_EXE_ringfence-vmm"),
        ])
        .arg("--file")
        .arg(format!("{kernel}:/guest/bzImage"))
        .arg("--file")
        .arg(format!("{initrd}:/guest/initrd"))
        .arg("--file")
        .arg(format!("{}:/guest/rootfs.img", disk.display()))
        .args(extra)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // A run that passed after its outer VM stalled still shows how it stalled.
    if stderr.contains("booting the outer VM again") || stderr.contains("lane: the outer VM woke") {
        eprintln!("the lane's outer VM stalled:\n{stderr}");
    }
    (out.status.code(), stdout, stderr)
}

/// The lane's "KVM ..." line: how the outer VM ran.
pub fn lane_kvm_line(stderr: &str) -> &str {
    stderr.lines().rfind(|l| l.starts_with("lane: KVM")).unwrap_or_default()
}
