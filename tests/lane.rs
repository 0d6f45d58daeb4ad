//! The nested-SVM lane: Linux guests booted by the real VMM inside a QEMU VM with emulated AMD
//! SVM (this machine's own KVM runs guest kernels far too slowly). Prints its timings.

use std::io::Write;
use std::process::{Command, Stdio};

fn ringfence() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ringfence"))
}

/// An initramfs of `root` (created if needed) with busybox, a console node and `init`.
fn initramfs_with(dir: &std::path::Path, init: &str, root: &std::path::Path) -> std::path::PathBuf {
    for d in ["bin", "dev", "proc", "sys"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    std::fs::write(root.join("init"), init).unwrap();
    let mut perms = std::fs::metadata(root.join("init")).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(root.join("init"), perms).unwrap();
    let console = std::ffi::CString::new(root.join("dev/console").to_str().unwrap()).unwrap();
    // SAFETY: creating a character device node from a C string (the tests run as root).
    unsafe { libc::mknod(console.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(5, 1)) };
    let files = Command::new("find").arg(".").current_dir(root).output().unwrap().stdout;
    let out = dir.join(format!("{}.cpio", root.file_name().unwrap().to_string_lossy()));
    let mut cpio = Command::new("busybox")
        .args(["cpio", "-o", "-H", "newc"])
        .current_dir(root)
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    cpio.stdin.take().unwrap().write_all(&files).unwrap();
    assert!(cpio.wait().unwrap().success());
    out
}

/// An initramfs whose init prints a line (uptime, CPUs seen) and reboots.
fn inner_initramfs(dir: &std::path::Path) -> std::path::PathBuf {
    let init = "#!/bin/busybox sh\n/bin/busybox mount -t proc proc /proc\n\
                /bin/busybox echo \"INNER-INIT-OK $(/bin/busybox cut -d' ' -f1 /proc/uptime) \
                cpus=$(/bin/busybox grep -c ^processor /proc/cpuinfo)\"\n\
                /bin/busybox reboot -f\n";
    initramfs_with(dir, init, &dir.join("inner"))
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

#[test]
fn linux_drivers_use_the_disk_network_and_entropy_devices_in_the_nested_lane() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = ringfence().args(["dev", "lane-kernel"]).output().unwrap();
    assert!(kernel.status.success(), "{}", String::from_utf8_lossy(&kernel.stderr));
    let kernel = String::from_utf8(kernel.stdout).unwrap().trim().to_owned();
    // Debian's kernel has the virtio drivers as modules: take them into the guest.
    let modules = std::path::Path::new(&kernel)
        .parent()
        .and_then(|boot| boot.parent())
        .unwrap()
        .join("lib/modules")
        .join(kernel.rsplit("vmlinuz-").next().unwrap())
        .join("kernel");
    let root = dir.path().join("inner");
    std::fs::create_dir_all(root.join("m")).unwrap();
    let order = [
        "drivers/virtio/virtio_ring.ko",
        "drivers/virtio/virtio.ko",
        "drivers/virtio/virtio_mmio.ko",
        "drivers/block/virtio_blk.ko",
        "drivers/char/hw_random/virtio-rng.ko",
        "net/core/failover.ko",
        "drivers/net/net_failover.ko",
        "drivers/net/virtio_net.ko",
    ];
    for m in order {
        let name = std::path::Path::new(m).file_name().unwrap();
        std::fs::copy(modules.join(m), root.join("m").join(name)).unwrap();
    }
    let insmods: String = order
        .iter()
        .map(|m| {
            let name = std::path::Path::new(m).file_name().unwrap().to_string_lossy().into_owned();
            format!("$B insmod /m/{name} || echo INSMOD-FAILED {name}\n")
        })
        .collect();
    let init = format!(
        "#!/bin/busybox sh\nB=/bin/busybox\n$B mount -t proc proc /proc\n$B mount -t sysfs sys /sys\n\
         $B mount -t devtmpfs dev /dev\n{insmods}\
         echo \"BLK-READ $($B head -c 16 /dev/vda)\"\n\
         echo \"BLK-SECTORS $($B cat /sys/block/vda/size)\"\n\
         $B printf 'written by linux' | $B dd of=/dev/vda bs=512 seek=1 conv=notrunc,fsync 2>/dev/null\n\
         echo \"RNG $($B cat /sys/class/misc/hw_random/rng_current) \
         $($B dd if=/dev/hwrng bs=32 count=1 2>/dev/null | $B od -An -tx1 | $B tr -d ' \\n')\"\n\
         $B ip addr add 172.30.0.2/24 dev eth0\n$B ip link set eth0 up\n\
         echo \"NET $($B cat /sys/class/net/eth0/address)\"\n\
         if $B ping -c 2 -W 3 172.30.0.1 >/dev/null; then echo NET-PING-OK; else echo NET-PING-FAILED; fi\n\
         $B reboot -f\n"
    );
    let initrd = initramfs_with(dir.path(), &init, &root);
    // The outer VM's end of the tap, addressed once the VMM has created it.
    let before = dir.path().join("before.sh");
    std::fs::write(
        &before,
        "#!/bin/sh\nwhile ! ip link set rf0 up 2>/dev/null; do sleep 0.05; done\nip addr add 172.30.0.1/24 dev rf0\n",
    )
    .unwrap();
    let disk = dir.path().join("disk.img");
    let mut image = vec![0u8; 1 << 20];
    image[..16].copy_from_slice(b"hello virtio-blk");
    std::fs::write(&disk, &image).unwrap();
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
        .arg("--file")
        .arg(format!("{}:/disk.img", disk.display()))
        .arg("--file")
        .arg(format!("{}:/lane/before.sh", before.display()))
        .args(["--sum", "/disk.img"])
        .args(["--", "--kernel", "/inner/vmlinuz", "--initrd", "/inner/initrd", "--mem", "256"])
        .args(["--disk", "/disk.img", "--net", "rf0,02:00:00:00:00:02", "--entropy"])
        .args(["--cmdline", "console=ttyS0 reboot=k panic=1 8250.nr_uarts=1 io_delay=none"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let line = |prefix: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line:\n{stdout}\n{stderr}"))
            .to_owned()
    };
    assert!(!stdout.contains("INSMOD-FAILED"), "{stdout}");
    // virtio-blk: the driver read sector 0 and saw the disk's size; its write reached the
    // image (the checksum of the file after the run is that of the expected bytes).
    assert_eq!(line("BLK-READ"), "BLK-READ hello virtio-blk");
    assert_eq!(line("BLK-SECTORS"), "BLK-SECTORS 2048");
    image[512..528].copy_from_slice(b"written by linux");
    let expected = dir.path().join("expected.img");
    std::fs::write(&expected, &image).unwrap();
    let sum = Command::new("sha256sum").arg(&expected).output().unwrap();
    let sum = String::from_utf8_lossy(&sum.stdout).split_whitespace().next().unwrap().to_owned();
    assert!(stderr.contains(&format!("lane: sha256 {sum} /disk.img")), "{stderr}");
    // virtio-rng feeds the kernel's hwrng.
    let rng = line("RNG ");
    assert!(rng.starts_with("RNG virtio_rng"), "{rng}");
    assert_eq!(rng.rsplit(' ').next().unwrap().len(), 64, "{rng}");
    // virtio-net: the MAC from the command line, and a ping across the tap.
    assert_eq!(line("NET "), "NET 02:00:00:00:00:02");
    assert!(stdout.contains("NET-PING-OK"), "{stdout}");
    eprintln!(
        "lane devices: {} ({:.1} s in all)",
        stderr.lines().rfind(|l| l.starts_with("lane: KVM")).unwrap_or_default(),
        started.elapsed().as_secs_f64()
    );
}
