//! The nested-SVM lane: Linux guests booted by the real VMM inside a QEMU VM with emulated AMD
//! SVM (this machine's own KVM runs guest kernels far too slowly). Prints its timings.

use std::io::Write;
use std::process::{Command, Stdio};

fn ringfence() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ringfence"))
}

/// An initramfs whose init prints a line (uptime, CPUs seen) and reboots.
fn inner_initramfs(dir: &std::path::Path) -> std::path::PathBuf {
    let root = dir.join("inner");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("dev")).unwrap();
    std::fs::create_dir_all(root.join("proc")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    let init = "#!/bin/busybox sh\n/bin/busybox mount -t proc proc /proc\n\
                /bin/busybox echo \"INNER-INIT-OK $(/bin/busybox cut -d' ' -f1 /proc/uptime) \
                cpus=$(/bin/busybox grep -c ^processor /proc/cpuinfo)\"\n\
                /bin/busybox reboot -f\n";
    std::fs::write(root.join("init"), init).unwrap();
    let mut perms = std::fs::metadata(root.join("init")).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(root.join("init"), perms).unwrap();
    let console = std::ffi::CString::new(root.join("dev/console").to_str().unwrap()).unwrap();
    // SAFETY: creating a character device node from a C string (the tests run as root).
    unsafe { libc::mknod(console.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(5, 1)) };
    let files = Command::new("find").arg(".").current_dir(&root).output().unwrap().stdout;
    let out = dir.join("inner.cpio");
    let mut cpio = Command::new("busybox")
        .args(["cpio", "-o", "-H", "newc"])
        .current_dir(&root)
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    cpio.stdin.take().unwrap().write_all(&files).unwrap();
    assert!(cpio.wait().unwrap().success());
    out
}

#[test]
fn linux_boots_to_its_init_under_the_vmm_in_the_nested_lane() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = ringfence().args(["dev", "lane-kernel"]).output().unwrap();
    assert!(kernel.status.success(), "{}", String::from_utf8_lossy(&kernel.stderr));
    let kernel = String::from_utf8(kernel.stdout).unwrap().trim().to_owned();
    let initrd = inner_initramfs(dir.path());
    let started = std::time::Instant::now();
    let out = ringfence()
        .args([
            "dev",
            "nested-run",
            "--timeout",
            "300",
            "--vmm",
            env!("CARGO_BIN_EXE_ringfence-vmm"),
        ])
        .arg("--file")
        .arg(format!("{kernel}:/inner/vmlinuz"))
        .arg("--file")
        .arg(format!("{}:/inner/initrd", initrd.display()))
        .args(["--", "--kernel", "/inner/vmlinuz", "--initrd", "/inner/initrd", "--mem", "256"])
        .args(["--vcpus", "2"])
        .args(["--cmdline", "console=ttyS0 reboot=k panic=1 8250.nr_uarts=1 io_delay=none"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let init = stdout.lines().find(|l| l.starts_with("INNER-INIT-OK")).unwrap_or_else(|| {
        panic!("the guest's init did not run:\n{stdout}\n{stderr}");
    });
    // Both vCPUs came up (Debian's cloud kernel parses no MP table: this is ACPI's MADT).
    assert!(init.ends_with("cpus=2"), "{init}");
    assert!(stdout.contains("ACPI: Using ACPI (MADT) for SMP configuration"), "{stdout}");
    // The kernel read its command line and unpacked the initramfs (bzImage boot protocol).
    assert!(stdout.contains("Kernel command line: console=ttyS0 reboot=k panic=1"), "{stdout}");
    assert!(stdout.contains("reboot: Restarting system"), "{stdout}");
    eprintln!(
        "lane: guest init reached at (uptime, CPUs) {}; {} ({:.1} s in all)",
        init.trim_start_matches("INNER-INIT-OK "),
        stderr.lines().last().unwrap_or_default(),
        started.elapsed().as_secs_f64()
    );
}
