//! `ringfence-vmm --api-sock`: real HTTP requests over the Unix socket, including bad ones, and
//! `--config-file --no-api`.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One request on a fresh connection: (status, body).
fn call(sock: &Path, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut s = UnixStream::connect(sock).expect("connect to the API socket");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let mut length = 0;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        if h.trim().is_empty() {
            break;
        }
        if let Some(v) = h.to_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0u8; length];
    r.read_exact(&mut body).unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn vmm() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ringfence-vmm"))
}

#[test]
fn the_api_refuses_bad_requests_and_boots_on_instance_start() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("api.sock");
    let kernel = dir.path().join("guest.elf");
    let mut code = vmm::tiny::print(b"api\n");
    code.extend_from_slice(&[0xeb, 0xfe]); // then spin until stopped
    std::fs::write(&kernel, vmm::tiny::pvh_elf(&code)).unwrap();
    let mut child = vmm().arg("--api-sock").arg(&sock).stdout(Stdio::piped()).spawn().unwrap();
    let start = Instant::now();
    while !sock.exists() {
        assert!(start.elapsed() < Duration::from_secs(5), "no API socket");
        std::thread::sleep(Duration::from_millis(10));
    }

    let (s, b) = call(&sock, "PUT", "/actions", br#"{"action_type":"InstanceStart"}"#);
    assert_eq!(s, 400);
    assert!(b.contains("Cannot start microvm without kernel configuration"), "{b}");
    assert_eq!(call(&sock, "PUT", "/boot-source", b"{not json").0, 400);
    let (s, b) = call(
        &sock,
        "PUT",
        "/machine-config",
        br#"{"vcpu_count":1,"mem_size_mib":16,"bogus":true}"#,
    );
    assert_eq!(s, 400);
    assert!(b.contains("fault_message") && b.contains("bogus"), "{b}");
    assert_eq!(call(&sock, "PUT", "/machine-config", &vec![b' '; 60_000]).0, 413);
    assert_eq!(call(&sock, "GET", "/nowhere", b"").0, 404);
    // Still serving after all that.
    let (s, b) = call(&sock, "GET", "/", b"");
    assert_eq!(s, 200);
    assert!(b.contains("Not started"), "{b}");

    let boot = format!(r#"{{"kernel_image_path":"{}"}}"#, kernel.display());
    assert_eq!(call(&sock, "PUT", "/boot-source", boot.as_bytes()).0, 204);
    assert_eq!(
        call(&sock, "PUT", "/machine-config", br#"{"vcpu_count":2,"mem_size_mib":16}"#).0,
        204
    );
    assert_eq!(call(&sock, "PUT", "/actions", br#"{"action_type":"InstanceStart"}"#).0, 204);
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line, "api\n");
    let (s, b) = call(&sock, "GET", "/", b"");
    assert!(s == 200 && b.contains("Running"), "{b}");
    assert_eq!(call(&sock, "PUT", "/boot-source", boot.as_bytes()).0, 400);
    // Metrics: refused until configured, then a JSON line per flush.
    let flush = br#"{"action_type":"FlushMetrics"}"#;
    assert_eq!(call(&sock, "PUT", "/actions", flush).0, 400);
    let metrics = dir.path().join("metrics.json");
    let m = format!(r#"{{"metrics_path":"{}"}}"#, metrics.display());
    assert_eq!(call(&sock, "PUT", "/metrics", m.as_bytes()).0, 204);
    assert_eq!(call(&sock, "PUT", "/actions", flush).0, 204);
    let line: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&metrics).unwrap().lines().next().unwrap())
            .unwrap();
    assert_eq!(line["serial"]["bytes_out"], 4, "{line}");
    assert!(line["vcpu"]["exit_io_out"].as_u64().unwrap() >= 4, "{line}");
    assert!(line["boot"]["first_serial_byte_us"].as_u64().unwrap() > 0, "{line}");
    // The vCPU, API and VMM threads run under their seccomp filters (mode 2).
    let mut filtered = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{}/task", child.id())).unwrap().flatten() {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        let name =
            status.lines().next().unwrap_or("").trim_start_matches("Name:").trim().to_owned();
        if status.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["Seccomp:", "2"]) {
            filtered.push(name);
        }
    }
    for t in ["vcpu0", "vcpu1", "api", "ringfence-vmm"] {
        assert!(filtered.iter().any(|n| n == t), "{t} not filtered: {filtered:?}");
    }

    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(143));
}

#[test]
fn a_config_file_boots_without_an_api() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = dir.path().join("guest.elf");
    let mut code = vmm::tiny::print(b"from a file\n");
    code.extend_from_slice(&vmm::tiny::RESET);
    std::fs::write(&kernel, vmm::tiny::pvh_elf(&code)).unwrap();
    let config = dir.path().join("vm.json");
    let text = format!(
        r#"{{"boot-source":{{"kernel_image_path":"{}"}},"machine-config":{{"vcpu_count":1,"mem_size_mib":16}}}}"#,
        kernel.display()
    );
    std::fs::write(&config, text).unwrap();
    let out = vmm().arg("--config-file").arg(&config).arg("--no-api").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from a file\n");
    assert_eq!(out.status.code(), Some(0));
    std::fs::write(&config, r#"{"boot-source":{"kernel_image_path":"/k"},"disks":[]}"#).unwrap();
    let out = vmm().arg("--config-file").arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("disks"));

    // Drives in the file, Firecracker's shape.
    std::fs::write(&kernel, vmm::tiny::pvh_elf(&vmm::tiny::virtio_blk_copy())).unwrap();
    let img = dir.path().join("disk.img");
    let mut image = vec![0u8; 4096];
    image[..16].copy_from_slice(b"hello virtio-blk");
    std::fs::write(&img, image).unwrap();
    let text = format!(
        r#"{{"boot-source":{{"kernel_image_path":"{}"}},"machine-config":{{"vcpu_count":1,"mem_size_mib":16}},
           "drives":[{{"drive_id":"rootfs","path_on_host":"{}","is_root_device":true,"is_read_only":false}}]}}"#,
        kernel.display(),
        img.display()
    );
    std::fs::write(&config, text).unwrap();
    let out = vmm().arg("--config-file").arg(&config).arg("--no-api").output().unwrap();
    assert_eq!(out.stdout, b"hello virtio-blk\0\0", "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(&std::fs::read(&img).unwrap()[512..528], b"hello virtio-blk");
}

#[test]
fn drives_configured_through_the_api_are_attached_at_instance_start() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("api.sock");
    let kernel = dir.path().join("blk.elf");
    std::fs::write(&kernel, vmm::tiny::pvh_elf(&vmm::tiny::virtio_blk_copy())).unwrap();
    let img = dir.path().join("disk.img");
    let mut image = vec![0u8; 4096];
    image[..16].copy_from_slice(b"hello virtio-blk");
    std::fs::write(&img, image).unwrap();
    let child = vmm().arg("--api-sock").arg(&sock).stdout(Stdio::piped()).spawn().unwrap();
    let start = Instant::now();
    while !sock.exists() {
        assert!(start.elapsed() < Duration::from_secs(5), "no API socket");
        std::thread::sleep(Duration::from_millis(10));
    }
    let boot = format!(r#"{{"kernel_image_path":"{}"}}"#, kernel.display());
    assert_eq!(call(&sock, "PUT", "/boot-source", boot.as_bytes()).0, 204);
    assert_eq!(
        call(&sock, "PUT", "/machine-config", br#"{"vcpu_count":1,"mem_size_mib":16}"#).0,
        204
    );
    // Bad drives: an id that disagrees with the path, a missing file, an unknown field.
    let drive = |id: &str, path: &str, extra: &str| {
        format!(
            r#"{{"drive_id":"{id}","path_on_host":"{path}","is_root_device":false,"is_read_only":false{extra}}}"#
        )
    };
    let p = img.display().to_string();
    let (s, b) = call(&sock, "PUT", "/drives/other", drive("data", &p, "").as_bytes());
    assert_eq!(s, 400);
    assert!(b.contains("fault_message") && b.contains("other"), "{b}");
    assert_eq!(
        call(&sock, "PUT", "/drives/data", drive("data", "/nope.img", "").as_bytes()).0,
        400
    );
    assert_eq!(
        call(&sock, "PUT", "/drives/data", drive("data", &p, r#","size":1"#).as_bytes()).0,
        400
    );
    let limited = drive("data", &p, r#","rate_limiter":{"ops":{"size":100,"refill_time":100}}"#);
    assert_eq!(call(&sock, "PUT", "/drives/data", limited.as_bytes()).0, 204);
    assert_eq!(call(&sock, "PUT", "/entropy", b"{}").0, 204);
    // The log: bad levels, paths and fields refused; then a file at Info.
    let log = dir.path().join("vmm.log");
    let logger = |level: &str, path: &str| format!(r#"{{"log_path":"{path}","level":"{level}"}}"#);
    let l = log.display().to_string();
    assert_eq!(call(&sock, "PUT", "/logger", logger("Loud", &l).as_bytes()).0, 400);
    assert_eq!(
        call(&sock, "PUT", "/logger", logger("Info", "/nonexistent/x.log").as_bytes()).0,
        400
    );
    assert_eq!(call(&sock, "PUT", "/logger", br#"{"log_path":"/tmp/x","colour":1}"#).0, 400);
    assert_eq!(call(&sock, "PUT", "/logger", logger("Info", &l).as_bytes()).0, 204);
    assert_eq!(call(&sock, "PUT", "/actions", br#"{"action_type":"InstanceStart"}"#).0, 204);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.stdout, b"hello virtio-blk\0\0");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(&std::fs::read(&img).unwrap()[512..528], b"hello virtio-blk");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("machine ending: Reset"), "{text}");
}

#[test]
fn a_running_machine_pauses_and_resumes_through_the_api() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("api.sock");
    let kernel = dir.path().join("chatty.elf");
    // mov dx, 0x3f8; l: mov al, 'x'; out dx, al; mov ecx, 0x20000; d: loop d; jmp l
    let code = [0x66, 0xba, 0xf8, 0x03, 0xb0, b'x', 0xee, 0xb9, 0, 0, 2, 0, 0xe2, 0xfe, 0xeb, 0xf4];
    std::fs::write(&kernel, vmm::tiny::pvh_elf(&code)).unwrap();
    let config = dir.path().join("vm.json");
    let text = format!(
        r#"{{"boot-source":{{"kernel_image_path":"{}"}},"machine-config":{{"vcpu_count":1,"mem_size_mib":16}}}}"#,
        kernel.display()
    );
    std::fs::write(&config, text).unwrap();
    let mut child = vmm()
        .arg("--config-file")
        .arg(&config)
        .arg("--api-sock")
        .arg(&sock)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (count, mut out) = (count.clone(), child.stdout.take().unwrap());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                count.fetch_add(n, Ordering::SeqCst);
            }
        })
    };
    let wait_for = |what: &str, f: &dyn Fn() -> bool| {
        let start = Instant::now();
        while !f() {
            assert!(start.elapsed() < Duration::from_secs(10), "{what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait_for("output and the API socket", &|| count.load(Ordering::SeqCst) > 0 && sock.exists());

    assert_eq!(call(&sock, "PATCH", "/vm", br#"{"state":"Paused"}"#).0, 204);
    std::thread::sleep(Duration::from_millis(100));
    let paused_at = count.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(count.load(Ordering::SeqCst), paused_at, "no guest output while paused");
    let (s, body) = call(&sock, "GET", "/", b"");
    assert_eq!(s, 200);
    assert!(body.contains("Paused"), "{body}");
    assert_eq!(call(&sock, "PATCH", "/vm", br#"{"state":"Sleeping"}"#).0, 400);

    assert_eq!(call(&sock, "PATCH", "/vm", br#"{"state":"Resumed"}"#).0, 204);
    wait_for("output after resuming", &|| count.load(Ordering::SeqCst) > paused_at);
    assert!(call(&sock, "GET", "/", b"").1.contains("Running"));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(143));
    reader.join().unwrap();
}

#[test]
fn send_ctrl_alt_del_presses_keys_the_guest_reads_from_the_i8042() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("api.sock");
    let kernel = dir.path().join("kbd.elf");
    // Print "ready", then read four bytes from the keyboard (polling the status port), echo
    // each to the serial port, and reset.
    let mut code = vmm::tiny::print(b"ready\n");
    code.extend_from_slice(&[0xb9, 4, 0, 0, 0]); // mov ecx, 4
    code.extend_from_slice(&[
        0xe4, 0x64, // l: in al, 0x64
        0xa8, 0x01, // test al, 1
        0x74, 0xfa, // jz l
        0xe4, 0x60, // in al, 0x60
        0x66, 0xba, 0xf8, 0x03, // mov dx, 0x3f8
        0xee, // out dx, al
        0xe2, 0xf1, // loop l
    ]);
    code.extend_from_slice(&vmm::tiny::RESET);
    std::fs::write(&kernel, vmm::tiny::pvh_elf(&code)).unwrap();
    let config = dir.path().join("vm.json");
    let text = format!(
        r#"{{"boot-source":{{"kernel_image_path":"{}"}},"machine-config":{{"vcpu_count":1,"mem_size_mib":16}}}}"#,
        kernel.display()
    );
    std::fs::write(&config, text).unwrap();
    let mut child = vmm()
        .arg("--config-file")
        .arg(&config)
        .arg("--api-sock")
        .arg(&sock)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    assert_eq!(call(&sock, "PUT", "/actions", br#"{"action_type":"SendCtrlAltDel"}"#).0, 204);
    let mut keys = Vec::new();
    out.read_to_end(&mut keys).unwrap();
    assert_eq!(keys, [0x14, 0x11, 0xe0, 0x71], "Ctrl, Alt, Del in scancode set 2");
    assert_eq!(child.wait().unwrap().code(), Some(0));
}
