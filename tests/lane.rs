//! The nested-SVM lane: Linux guests booted by the real VMM inside a QEMU VM with emulated AMD
//! SVM (this machine's own KVM runs guest kernels far too slowly). Prints its timings.

use std::io::Write;
use std::process::{Command, Stdio};

fn ringfence() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ringfence"))
}

/// The lane's kernel (Debian's cloud kernel), fetched once.
fn lane_kernel() -> String {
    let out = ringfence().args(["dev", "lane-kernel"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// `ringfence dev nested-run` with `files` put inside and the VMM given `args`:
/// (exit status, stdout, stderr).
fn nested_run(
    files: &[(String, &str)],
    extra: &[&str],
    args: &[&str],
) -> (Option<i32>, String, String) {
    let mut c = ringfence();
    c.args(["dev", "nested-run", "--timeout", "300", "--vmm", env!("CARGO_BIN_EXE_ringfence-vmm")]);
    for (host, inside) in files {
        c.arg("--file").arg(format!("{host}:{inside}"));
    }
    let cmdline = "console=ttyS0 reboot=k panic=1 8250.nr_uarts=1 io_delay=none";
    let out = c.args(extra).arg("--").args(args).args(["--cmdline", cmdline]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code(), stdout, String::from_utf8_lossy(&out.stderr).into_owned())
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
    let kernel = lane_kernel();
    let initrd = inner_initramfs(dir.path());
    let started = std::time::Instant::now();
    let (status, stdout, stderr) = nested_run(
        &[(kernel, "/inner/vmlinuz"), (initrd.display().to_string(), "/inner/initrd")],
        &[],
        &[
            "--kernel",
            "/inner/vmlinuz",
            "--initrd",
            "/inner/initrd",
            "--mem",
            "256",
            "--vcpus",
            "2",
        ],
    );
    assert_eq!(status, Some(0), "{stdout}\n{stderr}");
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

/// The ELF vmlinux inside a bzImage whose payload is LZ4-compressed (Debian's), unpacked with
/// the `lz4` tool.
fn vmlinux_of(bzimage: &str, dir: &std::path::Path) -> std::path::PathBuf {
    let image = std::fs::read(bzimage).unwrap();
    let magic = [0x02, 0x21, 0x4c, 0x18]; // LZ4 legacy frame
    let at = image.windows(4).position(|w| w == magic).expect("an LZ4 payload");
    let payload = dir.join("payload.lz4");
    std::fs::write(&payload, &image[at..]).unwrap();
    let out = dir.join("vmlinux");
    // The payload is followed by other data, which lz4 reports after decoding the frame.
    let _ = Command::new("lz4")
        .args(["-d", "-c"])
        .arg(&payload)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .status()
        .expect("lz4 (scripts/setup installs it)");
    let head = std::fs::read(&out).unwrap();
    assert_eq!(&head[..4], b"\x7fELF", "an ELF vmlinux");
    out
}

#[test]
fn an_elf_vmlinux_boots_through_its_pvh_entry_in_the_nested_lane() {
    let dir = tempfile::tempdir().unwrap();
    let vmlinux = vmlinux_of(&lane_kernel(), dir.path());
    let initrd = inner_initramfs(dir.path());
    let (status, stdout, stderr) = nested_run(
        &[
            (vmlinux.display().to_string(), "/inner/vmlinux"),
            (initrd.display().to_string(), "/inner/initrd"),
        ],
        &[],
        &[
            "--kernel",
            "/inner/vmlinux",
            "--initrd",
            "/inner/initrd",
            "--mem",
            "256",
            "--vcpus",
            "2",
        ],
    );
    assert_eq!(status, Some(0), "{stdout}\n{stderr}");
    let init = stdout.lines().find(|l| l.starts_with("INNER-INIT-OK")).unwrap_or_else(|| {
        panic!("the guest's init did not run:\n{stdout}\n{stderr}");
    });
    assert!(init.ends_with("cpus=2"), "{init}");
    // The PVH start info carried the command line and the initrd (as a module).
    assert!(stdout.contains("Kernel command line: console=ttyS0 reboot=k panic=1"), "{stdout}");
    eprintln!(
        "lane PVH: guest init reached at (uptime, CPUs) {init}; {}",
        stderr.lines().last().unwrap_or_default()
    );
}

#[test]
fn linux_drivers_use_the_disk_network_and_entropy_devices_in_the_nested_lane() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = lane_kernel();
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
    let (status, stdout, stderr) = nested_run(
        &[
            (kernel, "/inner/vmlinuz"),
            (initrd.display().to_string(), "/inner/initrd"),
            (disk.display().to_string(), "/disk.img"),
            (before.display().to_string(), "/lane/before.sh"),
        ],
        &["--sum", "/disk.img"],
        &[
            "--kernel",
            "/inner/vmlinuz",
            "--initrd",
            "/inner/initrd",
            "--mem",
            "256",
            "--disk",
            "/disk.img",
            "--net",
            "rf0,02:00:00:00:00:02",
            "--entropy",
        ],
    );
    assert_eq!(status, Some(0), "{stdout}\n{stderr}");
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

/// `ringfence dev nested-run --transport direct` with `files` and a script: (exit status,
/// stdout, stderr).
fn direct_run(
    files: &[(&std::path::Path, &str)],
    extra: &[&str],
    script: &str,
) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.sh");
    std::fs::write(&path, script).unwrap();
    let mut c = ringfence();
    c.args([
        "dev",
        "nested-run",
        "--transport",
        "direct",
        "--vmm",
        env!("CARGO_BIN_EXE_ringfence-vmm"),
    ]);
    for (host, inside) in files {
        c.arg("--file").arg(format!("{}:{inside}", host.display()));
    }
    let out = c.args(extra).arg("--script").arg(&path).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code(), stdout, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The direct transport, for hosts whose KVM is hardware-backed: the same run (files inside,
/// a script with busybox's applets, sums, the exit status) on this host's own KVM, in private
/// mount and network namespaces. The guest here is a tiny one: this host's nested KVM runs a
/// Linux kernel only slowly.
#[test]
fn the_direct_transport_runs_the_same_run_on_this_hosts_kvm() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = dir.path().join("tiny.elf");
    let mut code = vmm::tiny::print(b"tiny guest on this host's KVM\n");
    code.extend_from_slice(&vmm::tiny::RESET);
    std::fs::write(&tiny, vmm::tiny::pvh_elf(&code)).unwrap();
    let data = dir.path().join("data");
    std::fs::write(&data, "from the host\n").unwrap();
    let script = "#!/bin/sh\ncat /guest/data\necho written >>/guest/data\n\
                  /lane/ringfence-vmm --kernel /guest/tiny.elf --mem 16; echo \"VMM $?\"\n\
                  echo \"LINKS $(ip -o link | wc -l) TMP $(ls -A /tmp | wc -l)\"\n\
                  n=rf-direct-$$; /usr/bin/ip netns add $n && /usr/bin/ip -n $n -o link show lo >/dev/null && \
                  echo NETNS-OK; /usr/bin/ip netns del $n\n\
                  echo 'to the console' >/dev/console\nsleep 600 &\nexit 7\n";
    let started = std::time::Instant::now();
    let (status, stdout, stderr) = direct_run(
        &[(&tiny, "/guest/tiny.elf"), (&data, "/guest/data")],
        &["--sum", "/guest/data"],
        script,
    );
    assert_eq!(status, Some(7), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.contains(&"from the host"), "{stdout}");
    assert!(lines.contains(&"tiny guest on this host's KVM"), "{stdout}");
    assert!(lines.contains(&"VMM 0"), "{stdout}");
    // Its own network (loopback only) and an empty /tmp.
    assert!(lines.contains(&"LINKS 1 TMP 0"), "{stdout}");
    // `ip -n` (which makes `/` a slave mount) works in it, as lane nodes need.
    assert!(lines.contains(&"NETNS-OK"), "{stdout}\n{stderr}");
    assert!(stderr.contains("to the console"), "{stderr}");
    // The run wrote its copy: the sum is of what it left, the host's file is as it was.
    let expected = dir.path().join("expected");
    std::fs::write(&expected, "from the host\nwritten\n").unwrap();
    let sum = Command::new("sha256sum").arg(&expected).output().unwrap();
    let sum = String::from_utf8_lossy(&sum.stdout).split_whitespace().next().unwrap().to_owned();
    assert!(stderr.contains(&format!("lane: sha256 {sum} /guest/data")), "{stderr}");
    assert_eq!(std::fs::read_to_string(&data).unwrap(), "from the host\n");
    // What it left in the background ended with it.
    let left = Command::new("pgrep").args(["-f", "^sleep 600$"]).output().unwrap();
    assert!(left.stdout.is_empty(), "{}", String::from_utf8_lossy(&left.stdout));
    eprintln!(
        "direct lane: {} ({:.2} s in all)",
        stderr.lines().rfind(|l| l.starts_with("lane: KVM")).unwrap_or_default(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn the_direct_transport_refuses_host_directories_and_bounds_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::write(&data, "x").unwrap();
    let (status, stdout, stderr) = direct_run(&[(&data, "/etc/ringfence-test")], &[], "true\n");
    assert_eq!(status, Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("/etc/ringfence-test") && stderr.contains("the host's /etc"),
        "{stderr}"
    );
    assert!(!std::path::Path::new("/etc/ringfence-test").exists());

    let started = std::time::Instant::now();
    let (status, stdout, stderr) =
        direct_run(&[], &["--timeout", "2"], "echo started\nsleep 30\necho never\n");
    assert_eq!(status, Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("did not end within 2s") && stderr.contains("started"), "{stderr}");
    assert!(started.elapsed().as_secs() < 20, "{:?}", started.elapsed());
}

/// The row of a bench's Markdown table whose first cell is `name`.
fn table_row<'a>(table: &'a str, name: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.starts_with(&format!("| {name} |")))
        .unwrap_or_else(|| panic!("no row for {name}:\n{table}"))
}

/// `ringfence bench lane`: the project's kernel boots to init under this VMM and under QEMU's
/// microvm in the same outer VM; the table has both rows and the ratios.
#[test]
fn bench_lane_compares_the_vmm_with_qemu_microvm() {
    let started = std::time::Instant::now();
    let out = ringfence().args(["bench", "lane", "--runs", "1"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for vmm in ["ringfence-vmm", "qemu-microvm"] {
        let row = table_row(&stdout, vmm);
        let cells: Vec<f64> =
            row.split('|').skip(2).filter_map(|c| c.trim().parse().ok()).collect();
        // runs, to init, to exit, RSS: all measured, init before exit.
        assert_eq!(cells.len(), 4, "{row}");
        assert!(cells[1] > 0.0 && cells[1] <= cells[2] && cells[3] > 1.0, "{row}");
    }
    assert!(stdout.contains("ringfence-vmm vs QEMU microvm: to init "), "{stdout}");
    eprintln!("{stdout}(bench lane: {:.1} s in all)", started.elapsed().as_secs_f64());
}

/// `ringfence bench snapshot`: the project's guest booted and restored from a snapshot of it,
/// each timed to its agent's answer by the process that started it, from InstanceStart or the
/// snapshot load: a restore is faster than a boot, and the table says when the VMMs' sockets
/// listened and how long each took from spawning its VMM.
#[test]
fn bench_snapshot_times_boots_and_restores_to_the_agent() {
    let started = std::time::Instant::now();
    let out = ringfence().args(["bench", "snapshot", "--vms", "2"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let p50 = |what: &str| -> f64 {
        let row = table_row(&stdout, what);
        row.split('|').nth(3).and_then(|c| c.trim().parse().ok()).expect(row)
    };
    let (boot, restore) = (p50("cold boot -> agent"), p50("restore -> agent"));
    assert!(restore > 0.0 && restore < boot, "{stdout}");
    assert!(stdout.contains("vsock socket was listening after "), "{stdout}");
    assert!(stdout.contains("from spawning the VMM, p50: "), "{stdout}");
    eprintln!("{stdout}(bench snapshot: {:.1} s in all)", started.elapsed().as_secs_f64());
}
