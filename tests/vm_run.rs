//! `ringfence vm run` as a process: its exit status says how the machine ended.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn guest(dir: &std::path::Path, name: &str, code: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, vmm::tiny::pvh_elf(code)).unwrap();
    p
}

fn vm(kernel: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ringfence"));
    c.args(["vm", "run", "--mem", "16", "--kernel"]).arg(kernel);
    c
}

#[test]
fn exit_status_tells_reset_from_fault_from_signal() {
    let dir = tempfile::tempdir().unwrap();
    let mut hello = vmm::tiny::print(b"hi\n");
    hello.extend_from_slice(&vmm::tiny::RESET);
    let out = vm(&guest(dir.path(), "hello", &hello)).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    assert_eq!(out.status.code(), Some(0));
    // Four vCPUs (the others wait for a SIPI that never comes), a CPU template.
    let out = vm(&guest(dir.path(), "hello", &hello))
        .args(["--vcpus", "4", "--cpu-template", "nested-host"])
        .output()
        .unwrap();
    assert_eq!(
        (String::from_utf8_lossy(&out.stdout).as_ref(), out.status.code()),
        ("hi\n", Some(0))
    );

    // ud2 with no IDT: a triple fault.
    let out = vm(&guest(dir.path(), "fault", &[0x0f, 0x0b])).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("triple fault"));

    // A guest spinning forever (`jmp $`) ends on SIGTERM, with 128 + 15.
    let mut child =
        vm(&guest(dir.path(), "spin", &[0xeb, 0xfe])).stdout(Stdio::null()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "the VMM ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(143));

    let out = Command::new(env!("CARGO_BIN_EXE_ringfence"))
        .args(["vm", "run", "--kernel", "/nonexistent"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent"));
}

#[test]
fn a_jailed_vmm_runs_unprivileged_in_a_root_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let jail = dir.path().join("jail");
    let mut code = vmm::tiny::print(b"jailed\n");
    code.extend_from_slice(&[0xeb, 0xfe]); // spin until stopped
    let kernel = guest(dir.path(), "guest.elf", &code);
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringfence-vmm"))
        .args(["--mem", "16", "--kernel"])
        .arg(&kernel)
        .arg("--jail")
        .arg(&jail)
        .args(["--uid", "65534", "--gid", "65534"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line, "jailed\n");
    // The VMM is the jail supervisor's child: PID 1 of its own namespace, user nobody.
    let children =
        std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", child.id())).unwrap();
    let vmm_pid: u32 = children.split_whitespace().next().expect("the jailed VMM").parse().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{vmm_pid}/status")).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(uid.split_whitespace().skip(1).all(|u| u == "65534"), "{uid}");
    let nspid = status.lines().find(|l| l.starts_with("NSpid:")).unwrap();
    assert_eq!(nspid.split_whitespace().last(), Some("1"), "{nspid}");
    let mut root: Vec<String> = std::fs::read_dir(format!("/proc/{vmm_pid}/root"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    root.sort();
    assert_eq!(root, ["dev", "guest.elf"]);
    let fds = std::fs::read_dir(format!("/proc/{vmm_pid}/fd")).unwrap().count();
    assert!(fds < 32, "{fds} descriptors open");
    // SAFETY: signalling our own child (the supervisor forwards it).
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(143));
}

/// A disk whose sector 0 starts with a greeting.
fn disk(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("disk.img");
    let mut image = vec![0u8; 8192];
    image[..16].copy_from_slice(b"hello virtio-blk");
    std::fs::write(&p, image).unwrap();
    p
}

#[test]
fn a_disk_given_on_the_command_line_is_read_and_written_by_the_guest() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = guest(dir.path(), "blk.elf", &vmm::tiny::virtio_blk_copy());
    let img = disk(dir.path());
    // Seccomp filters are on: the device's I/O is allowed on the VMM thread.
    let metrics = dir.path().join("metrics.json");
    let out =
        vm(&kernel).arg("--disk").arg(&img).arg("--metrics-path").arg(&metrics).output().unwrap();
    assert_eq!(out.stdout, b"hello virtio-blk\0\0", "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(&std::fs::read(&img).unwrap()[512..528], b"hello virtio-blk");
    // The device's bytes are in the metrics written at exit.
    let text = std::fs::read_to_string(&metrics).unwrap();
    let m: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(m["devices"]["block0"]["read_bytes"], 512, "{m}");
    assert_eq!(m["devices"]["block0"]["write_bytes"], 512, "{m}");
    assert_eq!(m["devices"]["block0"]["requests"], 2, "{m}");

    // Read-only: the read works, the write gets IOERR (status 1) and the image is unchanged.
    let img = disk(dir.path());
    let out = vm(&kernel).arg("--disk").arg(format!("{}:ro", img.display())).output().unwrap();
    assert_eq!(out.stdout, b"hello virtio-blk\0\x01");
    assert_eq!(&std::fs::read(&img).unwrap()[512..528], &[0u8; 16]);

    let out = vm(&kernel).args(["--disk", "/nonexistent.img"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.img"));
}

#[test]
fn a_jailed_vmm_serves_a_bind_mounted_disk() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = guest(dir.path(), "blk.elf", &vmm::tiny::virtio_blk_copy());
    let img = disk(dir.path());
    std::os::unix::fs::chown(&img, Some(65534), Some(65534)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ringfence-vmm"))
        .args(["--mem", "16", "--kernel"])
        .arg(&kernel)
        .arg("--disk")
        .arg(&img)
        .arg("--jail")
        .arg(dir.path().join("jail"))
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"hello virtio-blk\0\0", "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        &std::fs::read(&img).unwrap()[512..528],
        b"hello virtio-blk",
        "writes reach the host file"
    );
}

#[test]
fn network_interfaces_are_checked_and_attached() {
    let dir = tempfile::tempdir().unwrap();
    let mut hello = vmm::tiny::print(b"hi\n");
    hello.extend_from_slice(&vmm::tiny::RESET);
    let kernel = guest(dir.path(), "hello", &hello);
    // In a network namespace of its own, the tap is created for the machine.
    let out = Command::new("unshare")
        .args(["--net", env!("CARGO_BIN_EXE_ringfence"), "vm", "run", "--mem", "16", "--kernel"])
        .arg(&kernel)
        .args(["--net", "rf-vm0,02:00:00:00:00:09", "--entropy"])
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"hi\n", "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0));
    for (bad, why) in
        [("rf-vm0,03:00:00:00:00:09", "multicast"), ("a-tap-name-too-long", "tap name")]
    {
        let out = vm(&kernel).args(["--net", bad]).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{bad}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(why),
            "{bad}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn guest_memory_can_be_a_memfd_or_huge_pages() {
    let dir = tempfile::tempdir().unwrap();
    let mut code = vmm::tiny::print(b"up\n");
    code.extend_from_slice(&vmm::tiny::RESET);
    let hello = guest(dir.path(), "hello", &code);
    let out = vm(&hello).arg("--memfd").output().unwrap();
    assert_eq!((out.stdout.as_slice(), out.status.code()), (&b"up\n"[..], Some(0)));

    // 2 MiB pages: make sure 16 are free for a 32 MiB guest, and give them back after.
    let nr_path = "/proc/sys/vm/nr_hugepages";
    let read = |p: &str| std::fs::read_to_string(p).unwrap().trim().parse::<u64>().unwrap();
    let before = read(nr_path);
    let free = read("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages");
    if free < 16 {
        std::fs::write(nr_path, (before + 16 - free).to_string()).unwrap();
    }
    let mut code = vmm::tiny::print(b"up\n");
    code.extend_from_slice(&[0xeb, 0xfe]);
    let spin = guest(dir.path(), "spin", &code);
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringfence-vmm"))
        .args(["--mem", "32", "--huge-pages", "--kernel"])
        .arg(&spin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let smaps = std::fs::read_to_string(format!("/proc/{}/smaps", child.id())).unwrap();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    std::fs::write(nr_path, before.to_string()).unwrap();
    assert_eq!(line, "up\n", "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        smaps.lines().any(|l| l.starts_with("KernelPageSize:") && l.contains("2048 kB")),
        "no 2 MiB mapping in the VMM"
    );
    // Asking for more than the host has is a clear error, not a crash later.
    let out = Command::new(env!("CARGO_BIN_EXE_ringfence-vmm"))
        .args(["--mem", "1048576", "--huge-pages", "--kernel"])
        .arg(&hello)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("huge pages"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_jailed_vmm_runs_under_its_cgroup_limits() {
    let dir = tempfile::tempdir().unwrap();
    let mut code = vmm::tiny::print(b"limited\n");
    code.extend_from_slice(&[0xeb, 0xfe]);
    let kernel = guest(dir.path(), "guest.elf", &code);
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let (cpu_file, cpu_value) =
        if v2 { ("cpu.max", "20000 100000") } else { ("cpu.cfs_quota_us", "20000") };
    let jailed = |limits: &[String]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ringfence-vmm"));
        c.args(["--mem", "16", "--kernel"])
            .arg(&kernel)
            .arg("--jail")
            .arg(dir.path().join("cgjail"));
        for l in limits {
            c.args(["--cgroup", l]);
        }
        c
    };
    let mut child = jailed(&["pids.max=64".into(), format!("{cpu_file}={cpu_value}")])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line, "limited\n");
    let children =
        std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", child.id())).unwrap();
    let vmm_pid: u32 = children.split_whitespace().next().unwrap().parse().unwrap();
    let cgroups = std::fs::read_to_string(format!("/proc/{vmm_pid}/cgroup")).unwrap();
    let name = format!("ringfence-vmm/cgjail-{}", child.id());
    let pids_dir = if v2 {
        format!("/sys/fs/cgroup/{name}")
    } else {
        assert!(cgroups.lines().any(|l| l.contains(":pids:") && l.ends_with(&name)), "{cgroups}");
        assert!(cgroups.lines().any(|l| l.contains(":cpu:") && l.ends_with(&name)), "{cgroups}");
        format!("/sys/fs/cgroup/pids/{name}")
    };
    assert_eq!(std::fs::read_to_string(format!("{pids_dir}/pids.max")).unwrap().trim(), "64");
    // SAFETY: signalling our own child (the supervisor forwards it).
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(143));
    assert!(!std::path::Path::new(&pids_dir).exists(), "the cgroup is removed afterwards");

    for (bad, why) in [
        ("nosuch.file=1", "does not exist"),
        ("pids.max=lots", "writing"),
        ("nonsense", "FILE=VALUE"),
    ] {
        let out = jailed(&[bad.into()]).output().unwrap();
        assert!(!out.status.success(), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{bad}: {err}");
    }
    let out = vm(&kernel).args(["--cgroup", "pids.max=64"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("--jail"));
}
