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
