//! The machine with guests of a few instructions each (assembled here as bytes, run in 64-bit
//! mode): serial output, reset through the i8042, and wild guests that must end the machine
//! cleanly with an error.

use std::io::Write;
use std::sync::{Arc, Mutex};

use vmm::exit::ExitReason;
use vmm::vm::{Program, VmConfig, run};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `mov dx, 0x3f8`, then `mov al, c; out dx, al` for each byte of `text`.
fn print(text: &[u8]) -> Vec<u8> {
    let mut code = vec![0x66, 0xba, 0xf8, 0x03];
    for c in text {
        code.extend_from_slice(&[0xb0, *c, 0xee]);
    }
    code
}

/// `mov al, 0xfe; out 0x64, al` (i8042: pulse reset), then `hlt` in case it returns.
const RESET: [u8; 5] = [0xb0, 0xfe, 0xe6, 0x64, 0xf4];

fn boot(code: Vec<u8>) -> (ExitReason, String) {
    let out = Captured::default();
    let config = VmConfig::new(16 << 20, Box::new(out.clone()));
    let reason = run(config, Program::flat(code)).expect("the machine runs");
    let text = String::from_utf8_lossy(&out.0.lock().unwrap()).into_owned();
    (reason, text)
}

#[test]
fn serial_output_reaches_the_host_and_an_i8042_reset_ends_the_machine() {
    let mut code = print(b"hello from the guest\n");
    code.extend_from_slice(&RESET);
    let (reason, text) = boot(code);
    assert_eq!(text, "hello from the guest\n");
    assert_eq!(reason, ExitReason::Reset);
    assert_eq!(reason.exit_code(), 0);
}

#[test]
fn probing_absent_ports_is_harmless() {
    // out 0x99, al; in al, 0x42 (reads as 0xff); cmp al, 0xff; jne +5 (skip "ok"); ...
    let mut code = vec![0xe6, 0x99, 0xe4, 0x42, 0x3c, 0xff];
    let ok = print(b"ok");
    code.extend_from_slice(&[0x75, ok.len() as u8]);
    code.extend_from_slice(&ok);
    code.extend_from_slice(&RESET);
    let (reason, text) = boot(code);
    assert_eq!((reason, text.as_str()), (ExitReason::Reset, "ok"));
}

#[test]
fn a_write_to_unmapped_mmio_ends_the_machine_with_an_error() {
    // mov rax, 0xf000_0000; mov byte [rax], 1
    let code = vec![0x48, 0xb8, 0, 0, 0, 0xf0, 0, 0, 0, 0, 0xc6, 0x00, 0x01];
    let (reason, _) = boot(code);
    assert_eq!(reason, ExitReason::GuestFault("write to unmapped MMIO at 0xf0000000".into()));
    assert_eq!(reason.exit_code(), 3);
}

#[test]
fn a_triple_fault_ends_the_machine_with_an_error() {
    // ud2 with no IDT: #UD cannot be delivered, nor the double fault.
    let (reason, _) = boot(vec![0x0f, 0x0b]);
    assert!(matches!(reason, ExitReason::GuestFault(_)), "{reason:?}");
}

#[test]
fn halting_ends_a_single_vcpu_machine() {
    let mut code = print(b"bye");
    code.extend_from_slice(&[0xfa, 0xf4]); // cli; hlt
    let (reason, text) = boot(code);
    assert_eq!((reason, text.as_str()), (ExitReason::Halt, "bye"));
}

#[test]
fn programs_that_do_not_fit_are_refused() {
    let config = VmConfig::new(2 << 20, Box::new(std::io::sink()));
    let err = run(config, Program::flat(vec![0x90; 2 << 20])).unwrap_err();
    assert!(err.to_string().contains("does not fit"), "{err}");
    let config = VmConfig::new(1000, Box::new(std::io::sink()));
    assert!(run(config, Program::flat(vec![0xf4])).is_err());
}

#[test]
fn an_elf_with_a_pvh_note_boots_in_32_bit_mode() {
    let dir = tempfile::tempdir().unwrap();
    let elf = dir.path().join("guest.elf");
    let mut code = vmm::tiny::print(b"pvh");
    code.extend_from_slice(&vmm::tiny::RESET);
    std::fs::write(&elf, vmm::tiny::pvh_elf(&code)).unwrap();
    let out = Captured::default();
    let config = VmConfig::new(16 << 20, Box::new(out.clone()));
    let reason = run(config, Program::Kernel(elf)).unwrap();
    assert_eq!(reason, ExitReason::Reset);
    assert_eq!(String::from_utf8_lossy(&out.0.lock().unwrap()), "pvh");

    let junk = dir.path().join("junk");
    std::fs::write(&junk, b"not a kernel").unwrap();
    let config = VmConfig::new(16 << 20, Box::new(std::io::sink()));
    let err = run(config, Program::Kernel(junk)).unwrap_err();
    assert!(err.to_string().contains("neither an ELF kernel"), "{err}");
}

/// A device for the transport test: counts notifications and answers each with an interrupt.
#[derive(Default)]
struct Echo {
    interrupt: Option<Arc<dyn virtio_devices::Interrupt>>,
    notified: Arc<Mutex<Vec<u16>>>,
}

impl virtio_devices::VirtioDevice for Echo {
    fn device_type(&self) -> u32 {
        virtio_devices::types::ENTROPY
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &[256]
    }
    fn features(&self) -> u64 {
        virtio_devices::VIRTIO_F_VERSION_1
    }
    fn ack_features(&mut self, _f: u64) {}
    fn read_config(&self, _o: u64, d: &mut [u8]) {
        d.fill(0);
    }
    fn write_config(&mut self, _o: u64, _d: &[u8]) {}
    fn activate(
        &mut self,
        _m: virtio_devices::GuestMem,
        _q: Vec<virtio_devices::QueueConfig>,
        i: Arc<dyn virtio_devices::Interrupt>,
    ) -> Result<(), virtio_devices::ActivateError> {
        self.interrupt = Some(i);
        Ok(())
    }
    fn queue_notify(&mut self, q: u16) {
        self.notified.lock().unwrap().push(q);
        if let Some(i) = &self.interrupt {
            i.used_buffers();
        }
    }
    fn reset(&mut self) {
        self.interrupt = None;
    }
}

#[test]
fn a_guest_drives_a_virtio_mmio_device_through_ioeventfd_and_interrupt_status() {
    // 32-bit code (PVH entry): probe, negotiate, set up queue 0, go live, notify, then wait for
    // the device's interrupt status before saying "ok".
    let mut code = vec![0xbb, 0, 0, 0, 0xd0]; // mov ebx, 0xd0000000
    let check = |code: &mut Vec<u8>, disp: u8, value: u32| {
        code.extend_from_slice(&[0x8b, 0x43, disp]); // mov eax, [ebx+disp]
        code.push(0x3d); // cmp eax, imm32
        code.extend_from_slice(&value.to_le_bytes());
        code.extend_from_slice(&[0x0f, 0x85, 0, 0, 0, 0]); // jne fail (patched below)
        code.len() - 4
    };
    let mut patches = vec![check(&mut code, 0, 0x7472_6976), check(&mut code, 4, 2)];
    patches.push(check(&mut code, 8, 4));
    for (off, v) in [
        (0x70u8, 3u32),
        (0x24, 1),
        (0x20, 1),
        (0x70, 0xb),
        (0x30, 0),
        (0x38, 128),
        (0x44, 1),
        (0x70, 0xf),
        (0x50, 0),
    ] {
        code.extend_from_slice(&[0xc7, 0x43, off]);
        code.extend_from_slice(&v.to_le_bytes());
    }
    code.extend_from_slice(&[0x8b, 0x43, 0x60, 0x85, 0xc0, 0x74, 0xf9]); // wait for status
    code.extend_from_slice(&vmm::tiny::print(b"ok"));
    code.extend_from_slice(&vmm::tiny::RESET);
    let fail = code.len();
    for p in patches {
        let rel = (fail - (p + 4)) as i32;
        code[p..p + 4].copy_from_slice(&rel.to_le_bytes());
    }
    code.extend_from_slice(&vmm::tiny::print(b"no"));
    code.extend_from_slice(&vmm::tiny::RESET);

    let dir = tempfile::tempdir().unwrap();
    let elf = dir.path().join("virtio.elf");
    std::fs::write(&elf, vmm::tiny::pvh_elf(&code)).unwrap();
    let echo = Echo::default();
    let notified = echo.notified.clone();
    let out = Captured::default();
    let mut config = VmConfig::new(16 << 20, Box::new(out.clone()));
    config.devices.push(Arc::new(Mutex::new(echo)));
    let reason = run(config, Program::Kernel(elf)).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.0.lock().unwrap()), "ok");
    assert_eq!(reason, ExitReason::Reset);
    assert_eq!(*notified.lock().unwrap(), vec![0]);
}

#[test]
fn a_guest_reads_and_writes_a_disk_through_virtio_blk() {
    let dir = tempfile::tempdir().unwrap();
    let elf = dir.path().join("blk.elf");
    std::fs::write(&elf, vmm::tiny::pvh_elf(&vmm::tiny::virtio_blk_copy())).unwrap();
    let disk = dir.path().join("disk.img");
    let mut image = vec![0u8; 4096];
    image[..16].copy_from_slice(b"hello virtio-blk");
    std::fs::write(&disk, &image).unwrap();
    let block = virtio_devices::block::Block::new(&virtio_devices::block::BlockConfig {
        path: disk.clone(),
        ..Default::default()
    })
    .unwrap();
    let out = Captured::default();
    let mut config = VmConfig::new(16 << 20, Box::new(out.clone()));
    config.devices.push(Arc::new(Mutex::new(block)));
    let reason = run(config, Program::Kernel(elf)).unwrap();
    assert_eq!(reason, ExitReason::Reset);
    assert_eq!(
        out.0.lock().unwrap().as_slice(),
        b"hello virtio-blk\0\0",
        "data, then two OK statuses"
    );
    let after = std::fs::read(&disk).unwrap();
    assert_eq!(after[512..1024], image[..512], "sector 1 now holds sector 0");
    assert_eq!(after[1024..], image[1024..]);
}

/// Assembles 64-bit code with binutils' `as` into flat bytes.
fn assemble(source: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let (s, o, bin) = (dir.path().join("g.s"), dir.path().join("g.o"), dir.path().join("g.bin"));
    std::fs::write(&s, format!(".intel_syntax noprefix\n.code64\n{source}\n")).unwrap();
    let ok = |c: &mut std::process::Command| assert!(c.status().unwrap().success(), "{c:?}");
    ok(std::process::Command::new("as").arg("-o").arg(&o).arg(&s));
    ok(std::process::Command::new("objcopy")
        .args(["-O", "binary", "-j", ".text"])
        .arg(&o)
        .arg(&bin));
    std::fs::read(bin).unwrap()
}

#[test]
fn int3_raises_a_breakpoint_that_returns_after_the_instruction() {
    // An IDT with a #BP gate at 0x3000; the handler checks the return address is just past
    // the int3 (a trap), prints B and returns; then A and a reset. On hosts whose KVM cannot
    // emulate int3 at CPL0 the VMM delivers the #BP itself (vmm::emulation).
    let code = assemble(
        r#"
        lea rax, [rip + handler]
        mov rdi, 0x3000 + 3 * 16
        mov word ptr [rdi], ax
        mov word ptr [rdi + 2], 0x08
        mov word ptr [rdi + 4], 0x8e00
        shr rax, 16
        mov word ptr [rdi + 6], ax
        shr rax, 16
        mov dword ptr [rdi + 8], eax
        mov dword ptr [rdi + 12], 0
        lidt [rip + idtr]
        int3
after:
        mov dx, 0x3f8
        mov al, 'A'
        out dx, al
        mov al, 0xfe
        out 0x64, al
        hlt
handler:
        lea rbx, [rip + after]
        cmp [rsp], rbx
        jne bad
        mov dx, 0x3f8
        mov al, 'B'
        out dx, al
        iretq
bad:
        mov dx, 0x3f8
        mov al, 'X'
        out dx, al
        mov al, 0xfe
        out 0x64, al
        hlt
idtr:
        .word 4 * 16 - 1
        .quad 0x3000
"#,
    );
    let (reason, text) = boot(code);
    assert_eq!(text, "BA");
    assert_eq!(reason, ExitReason::Reset);
}

#[test]
fn fwait_with_nothing_pending_goes_on() {
    // CR0 as the VMM sets it up (TS clear), no x87 exception pending: fwait does nothing. On
    // hosts whose KVM cannot emulate it at CPL0 the VMM finishes it (vmm::emulation).
    let code = assemble(
        r#"
        fninit
        fwait
        mov dx, 0x3f8
        mov al, 'W'
        out dx, al
        mov al, 0xfe
        out 0x64, al
        hlt
"#,
    );
    let (reason, text) = boot(code);
    assert_eq!(text, "W");
    assert_eq!(reason, ExitReason::Reset);
}
