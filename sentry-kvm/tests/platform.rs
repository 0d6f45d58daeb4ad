//! The KVM platform against tiny hand-assembled programs: syscalls and exceptions from CPL3
//! reach the Sentry with the right state.

use sentry_kvm::mm::page_table::{PageTables, Pte};
use sentry_kvm::mm::{PAGE_SIZE, VirtAddr};
use sentry_kvm::platform::kvm::{Machine, layout};
use sentry_kvm::platform::{Exit, UserContext};

const CODE: u64 = 0x40_0000;
const DATA: u64 = 0x60_0000;

fn setup(code: &[u8]) -> (std::sync::Arc<Machine>, PageTables, UserContext) {
    let m = Machine::new(64 << 20).unwrap();
    let phys = m.phys();
    let pt = PageTables::new(phys, layout::KERNEL_PDPT).unwrap();
    let f = phys.alloc_frame().unwrap();
    phys.mem.write(f, code);
    pt.map(phys, VirtAddr(CODE), Pte::user(f, false, true)).unwrap();
    let d = phys.alloc_frame().unwrap();
    pt.map(phys, VirtAddr(DATA), Pte::user(d, true, false)).unwrap();
    let mut ctx = UserContext { cr3: pt.root().0, ..Default::default() };
    ctx.regs.rip = CODE;
    ctx.regs.rsp = DATA + PAGE_SIZE;
    ctx.regs.rflags = 0x202;
    (m, pt, ctx)
}

#[test]
fn syscall_reaches_sentry_and_returns() {
    // mov eax, 39; syscall; mov edi, eax; mov eax, 60; syscall
    let code = [0xb8, 39, 0, 0, 0, 0x0f, 0x05, 0x89, 0xc7, 0xb8, 60, 0, 0, 0, 0x0f, 0x05];
    let (m, _pt, mut ctx) = setup(&code);
    let mut v = m.acquire_vcpu().unwrap();
    v.bind_current_thread();
    assert_eq!(v.run(&mut ctx).unwrap(), Exit::Syscall);
    assert_eq!(ctx.regs.rax, 39);
    assert_eq!(ctx.regs.rip, CODE + 7);
    ctx.regs.rax = 1234;
    assert_eq!(v.run(&mut ctx).unwrap(), Exit::Syscall);
    assert_eq!(ctx.regs.rax, 60);
    assert_eq!(ctx.regs.rdi, 1234);
}

#[test]
fn faults_are_reported_with_user_state() {
    // mov rax, [0x1000]  (unmapped) ; ud2 ; mov byte [CODE], 1 (read-only) ; xor ecx,ecx; div ecx
    let mut code = vec![0x48, 0x8b, 0x04, 0x25, 0x00, 0x10, 0x00, 0x00];
    code.extend([0x0f, 0x0b]);
    code.extend([0xc6, 0x04, 0x25, 0x00, 0x00, 0x40, 0x00, 0x01]);
    code.extend([0x31, 0xc9, 0xf7, 0xf1]);
    code.extend([0xcc]);
    let (m, _pt, mut ctx) = setup(&code);
    let mut v = m.acquire_vcpu().unwrap();
    v.bind_current_thread();
    let e = v.run(&mut ctx).unwrap();
    assert_eq!(e, Exit::Fault { vector: 14, error_code: 4, addr: 0x1000 });
    assert_eq!(ctx.regs.rip, CODE);
    ctx.regs.rip += 8;
    assert_eq!(v.run(&mut ctx).unwrap(), Exit::Fault { vector: 6, error_code: 0, addr: 0 });
    assert_eq!(ctx.regs.rip, CODE + 8);
    ctx.regs.rip += 2;
    assert_eq!(v.run(&mut ctx).unwrap(), Exit::Fault { vector: 14, error_code: 7, addr: CODE });
    ctx.regs.rip += 8;
    assert_eq!(v.run(&mut ctx).unwrap(), Exit::Fault { vector: 0, error_code: 0, addr: 0 });
    assert_eq!(ctx.regs.rip, CODE + 20);
    ctx.regs.rip += 2;
    let e = v.run(&mut ctx).unwrap();
    assert_eq!(e, Exit::Fault { vector: 3, error_code: 0, addr: 0 });
    assert_eq!(ctx.regs.rip, CODE + 23);
}
