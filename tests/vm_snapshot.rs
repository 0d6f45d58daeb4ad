//! Snapshots through `ringfence-vmm`'s API with a tiny guest that prints the alphabet over and
//! over, "aAbBcC...": the small letter from a register, the capital from a counter in guest
//! memory. A restored machine carries on with the letter after the last one printed before
//! the pause (registers and memory came back), clones of one snapshot run side by side, a Diff
//! snapshot holds only the page the guest wrote since the Full one and, laid over it, restores
//! the later state; bad snapshots are refused with a clear error without harming the VMM that
//! was asked to load them.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vmm::api::client;

const T: Duration = Duration::from_secs(30);

/// mov dx, 0x3f8; mov bl, 'a'; mov byte [0x500000], 'A'
/// l:  mov al, bl; out dx, al; inc bl; cmp bl, 'z'+1; jne s1; mov bl, 'a'
/// s1: mov al, [0x500000]; out dx, al; inc al; cmp al, 'Z'+1; jne s2; mov al, 'A'
/// s2: mov [0x500000], al; mov ecx, 0x20000; d: loop d; jmp l
#[rustfmt::skip]
const ALPHABET: [u8; 53] = [
    0x66, 0xba, 0xf8, 0x03, 0xb3, b'a', 0xc6, 0x05, 0x00, 0x00, 0x50, 0x00, b'A',
    /* l */ 0x88, 0xd8, 0xee, 0xfe, 0xc3, 0x80, 0xfb, 0x7b, 0x75, 0x02, 0xb3, b'a',
    /* s1 */ 0xa0, 0x00, 0x00, 0x50, 0x00, 0xee, 0xfe, 0xc0, 0x3c, 0x5b, 0x75, 0x02, 0xb0, b'A',
    /* s2 */ 0xa2, 0x00, 0x00, 0x50, 0x00, 0xb9, 0x00, 0x00, 0x02, 0x00, 0xe2, 0xfe, 0xeb, 0xd8,
];

/// A VMM process and what it has printed so far.
struct Vmm {
    child: Child,
    out: Arc<Mutex<Vec<u8>>>,
    sock: PathBuf,
}

impl Vmm {
    fn spawn(sock: &Path, args: &[&str]) -> Vmm {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ringfence-vmm"))
            .arg("--api-sock")
            .arg(sock)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start ringfence-vmm");
        let out = Arc::new(Mutex::new(Vec::new()));
        {
            let (out, mut stdout) = (out.clone(), child.stdout.take().unwrap());
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stdout.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    out.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
        let start = Instant::now();
        while !sock.exists() {
            assert!(start.elapsed() < T, "no API socket at {}", sock.display());
            std::thread::sleep(Duration::from_millis(10));
        }
        Vmm { child, out, sock: sock.into() }
    }

    fn printed(&self) -> Vec<u8> {
        self.out.lock().unwrap().clone()
    }

    fn wait_for_output(&self, more_than: usize) {
        let start = Instant::now();
        while self.printed().len() <= more_than {
            assert!(start.elapsed() < T, "the guest printed {} bytes", self.printed().len());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn put(&self, uri: &str, body: serde_json::Value) -> Result<String, String> {
        client::expect_ok(&self.sock, "PUT", uri, &body, T).map_err(|e| e.to_string())
    }

    fn patch_vm(&self, state: &str) {
        client::expect_ok(&self.sock, "PATCH", "/vm", &serde_json::json!({ "state": state }), T)
            .unwrap();
    }
}

impl Drop for Vmm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the guest prints after `letter`: its capital after a small letter (the counter in
/// memory keeps step with the register), the next small letter after a capital.
fn next(letter: u8) -> u8 {
    match letter {
        b'a'..=b'z' => letter.to_ascii_uppercase(),
        b'Z' => b'a',
        _ => letter.to_ascii_lowercase() + 1,
    }
}

fn load(snapshot: &Path, memory: &Path, resume: bool) -> serde_json::Value {
    serde_json::json!({
        "snapshot_path": snapshot,
        "mem_backend": { "backend_type": "File", "backend_path": memory },
        "resume_vm": resume,
    })
}

/// Boots the alphabet guest, snapshots it paused, and returns (snapshot, memory, last letter).
fn snapshot_of_a_running_guest(dir: &Path) -> (PathBuf, PathBuf, u8) {
    let kernel = dir.join("alphabet.elf");
    std::fs::write(&kernel, vmm::tiny::pvh_elf(&ALPHABET)).unwrap();
    let config = dir.join("vm.json");
    let text = format!(
        r#"{{"boot-source":{{"kernel_image_path":"{}"}},"machine-config":{{"vcpu_count":1,"mem_size_mib":16,"track_dirty_pages":true}},"entropy":{{}}}}"#,
        kernel.display()
    );
    std::fs::write(&config, text).unwrap();
    let vm = Vmm::spawn(&dir.join("first.sock"), &["--config-file", config.to_str().unwrap()]);
    vm.wait_for_output(30);
    let (snapshot, memory) = (dir.join("vm.snap"), dir.join("vm.mem"));
    let running = vm.put(
        "/snapshot/create",
        serde_json::json!({"snapshot_path": snapshot, "mem_file_path": memory}),
    );
    assert!(running.unwrap_err().contains("pause"), "a running machine is not snapshotted");
    vm.patch_vm("Paused");
    let printed = vm.printed();
    let started = Instant::now();
    vm.put(
        "/snapshot/create",
        serde_json::json!({"snapshot_type": "Full", "snapshot_path": snapshot, "mem_file_path": memory}),
    )
    .unwrap();
    println!("snapshot of a 16 MiB guest in {} ms", started.elapsed().as_millis());
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(vm.printed(), printed, "nothing ran while paused and snapshotted");
    (snapshot, memory, *printed.last().unwrap())
}

#[test]
fn a_restored_guest_carries_on_where_it_was_paused_and_clones_share_its_memory() {
    let dir = tempfile::tempdir().unwrap();
    let (snapshot, memory, last) = snapshot_of_a_running_guest(dir.path());
    let meta = std::fs::metadata(&memory).unwrap();
    assert_eq!(meta.len(), 16 << 20);
    assert!(meta.blocks() * 512 < 1 << 20, "the memory file is sparse: {} blocks", meta.blocks());

    // Two clones of the one snapshot, side by side; one starts paused.
    let a = Vmm::spawn(&dir.path().join("a.sock"), &[]);
    let b = Vmm::spawn(&dir.path().join("b.sock"), &[]);
    let started = Instant::now();
    a.put("/snapshot/load", load(&snapshot, &memory, true)).unwrap();
    println!("restored and resumed in {} ms", started.elapsed().as_millis());
    b.put("/snapshot/load", load(&snapshot, &memory, false)).unwrap();
    a.wait_for_output(3);
    let first = a.printed()[0];
    assert_eq!(first, next(last), "the restored guest goes on after {:?}", last as char);
    assert_eq!(a.printed()[1], next(first), "the counter in memory came back too");
    for w in a.printed().windows(2) {
        assert_eq!(w[1], next(w[0]), "in order: {:?}", String::from_utf8_lossy(&a.printed()));
    }
    let (_, state) = client::call(&b.sock, "GET", "/", b"", T).unwrap();
    assert!(state.contains("Paused"), "{state}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(b.printed().is_empty(), "a clone loaded without resume_vm stays paused");
    b.patch_vm("Resumed");
    b.wait_for_output(0);
    assert_eq!(b.printed()[0], next(last));
    assert!(
        b.put("/snapshot/load", load(&snapshot, &memory, true))
            .unwrap_err()
            .contains("not started"),
        "a started VMM loads no snapshot"
    );
}

#[test]
fn a_diff_snapshot_holds_the_pages_written_since_and_restores_over_its_base() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = dir.path().join("alphabet.elf");
    std::fs::write(&kernel, vmm::tiny::pvh_elf(&ALPHABET)).unwrap();
    let vm = Vmm::spawn(
        &dir.path().join("a.sock"),
        &["--kernel", kernel.to_str().unwrap(), "--mem", "16"],
    );
    vm.wait_for_output(10);
    vm.patch_vm("Paused");
    let (full, base) = (dir.path().join("full.snap"), dir.path().join("base.mem"));
    let create = |kind: &str, snap: &Path, mem: &Path| serde_json::json!({"snapshot_type": kind, "snapshot_path": snap, "mem_file_path": mem});
    // Without dirty page tracking (the command line's machine has none), no Diff.
    let e = vm.put("/snapshot/create", create("Diff", &full, &base)).unwrap_err();
    assert!(e.contains("track_dirty_pages"), "{e}");
    vm.put("/snapshot/create", create("Full", &full, &base)).unwrap();
    drop(vm);

    // Restored with tracking: it runs on, is paused, and a Diff is taken.
    let vm = Vmm::spawn(&dir.path().join("b.sock"), &[]);
    let mut body = load(&full, &base, true);
    body["enable_diff_snapshots"] = true.into();
    vm.put("/snapshot/load", body).unwrap();
    vm.wait_for_output(20);
    vm.patch_vm("Paused");
    let last = *vm.printed().last().unwrap();
    let (later, diff) = (dir.path().join("later.snap"), dir.path().join("diff.mem"));
    vm.put("/snapshot/create", create("Diff", &later, &diff)).unwrap();
    drop(vm);
    let meta = std::fs::metadata(&diff).unwrap();
    assert_eq!(meta.len(), 16 << 20);
    // The counter's page, and nothing else: the guest writes no other.
    assert_eq!(meta.blocks() * 512, 4096, "{} KiB in the diff", meta.blocks() / 2);

    let merged = dir.path().join("merged.mem");
    std::fs::copy(&base, &merged).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringfence"))
        .args(["vm", "rebase-memory", "--base"])
        .arg(&merged)
        .arg("--diff")
        .arg(&diff)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let vm = Vmm::spawn(&dir.path().join("c.sock"), &[]);
    vm.put("/snapshot/load", load(&later, &merged, true)).unwrap();
    vm.wait_for_output(1);
    assert_eq!(vm.printed()[0], next(last), "the Diff's registers");
    assert_eq!(vm.printed()[1], next(next(last)), "the Diff's memory");
}

#[test]
fn bad_snapshots_are_refused_and_the_vmm_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let (snapshot, memory, last) = snapshot_of_a_running_guest(dir.path());
    let good = std::fs::read(&snapshot).unwrap();
    let bad = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let mut flipped = good.clone();
    let at = flipped.len() / 2;
    flipped[at] ^= 0x20;
    let mut other_version = good.clone();
    other_version[8] = 99;
    let short_memory = dir.path().join("short.mem");
    std::fs::write(&short_memory, vec![0u8; 4096]).unwrap();
    // A state whose CPU promises a feature this host's KVM lacks.
    let mut state = vmm::snapshot::format::decode(&good).unwrap();
    let kvm = kvm_ioctls::Kvm::new().unwrap();
    let supported = kvm.get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES).unwrap();
    let leaf7 = supported.as_slice().iter().find(|e| e.function == 7 && e.index == 0).unwrap();
    let lacking = (0..32).map(|b| 1u32 << b).find(|bit| leaf7.ebx & bit == 0).unwrap();
    for v in &mut state.vcpus {
        for e in v.cpuid.iter_mut().filter(|e| e.function == 7 && e.index == 0) {
            e.ebx |= lacking;
        }
    }
    let alien = dir.path().join("alien.snap");
    vmm::snapshot::format::write(&alien, &state).unwrap();

    let vm = Vmm::spawn(&dir.path().join("c.sock"), &[]);
    let cases = [
        (bad("flipped.snap", &flipped), memory.clone(), "corrupt"),
        (bad("truncated.snap", &good[..good.len() - 100]), memory.clone(), "truncated"),
        (bad("version.snap", &other_version), memory.clone(), "version 99"),
        (bad("empty.snap", b""), memory.clone(), "truncated"),
        (
            bad("text.snap", b"{\"not\": \"a snapshot\"} and some more bytes"),
            memory.clone(),
            "not a snapshot",
        ),
        (dir.path().join("missing.snap"), memory.clone(), "No such file"),
        (snapshot.clone(), short_memory, "4096 bytes"),
        (alien, memory.clone(), "does not offer"),
    ];
    for (snap, mem, why) in cases {
        let e = vm.put("/snapshot/load", load(&snap, &mem, true)).unwrap_err();
        assert!(e.contains(why), "{}: {e}", snap.display());
        assert!(e.contains("400"), "{e}");
    }
    let e = vm.put("/snapshot/load", serde_json::json!({"snapshot_path": snapshot})).unwrap_err();
    assert!(e.contains("mem_backend"), "{e}");
    assert!(vm.printed().is_empty());
    // The same VMM still loads a good one.
    vm.put("/snapshot/load", load(&snapshot, &memory, true)).unwrap();
    vm.wait_for_output(0);
    assert_eq!(vm.printed()[0], next(last));
}
