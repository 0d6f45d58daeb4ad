//! Both platforms against tiny hand-assembled programs: syscalls and exceptions of application
//! code reach the Sentry with the right state, the same on KVM (CPL3 in a VM) and systrap
//! (a stub process under seccomp).

use std::sync::Arc;

use sentry_kvm::mm::page_table::{PageTables, Pte};
use sentry_kvm::mm::{PAGE_SIZE, VirtAddr};
use sentry_kvm::platform::kvm::{Machine, layout};
use sentry_kvm::platform::systrap::Systrap;
use sentry_kvm::platform::{Exit, Platform, PlatformKind, UserContext};

const CODE: u64 = 0x40_0000;
const DATA: u64 = 0x60_0000;
const PLATFORMS: [PlatformKind; 2] = [PlatformKind::Kvm, PlatformKind::Systrap];

fn setup(kind: PlatformKind, code: &[u8]) -> (Arc<dyn Platform>, PageTables, UserContext) {
    let m: Arc<dyn Platform> = match kind {
        PlatformKind::Kvm => Machine::new(64 << 20).unwrap(),
        PlatformKind::Systrap => Systrap::new(64 << 20).unwrap(),
    };
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
    for kind in PLATFORMS {
        syscall_round_trip(kind);
    }
}

fn syscall_round_trip(kind: PlatformKind) {
    // mov eax, 39; syscall; mov edi, eax; mov eax, 60; syscall
    let code = [0xb8, 39, 0, 0, 0, 0x0f, 0x05, 0x89, 0xc7, 0xb8, 60, 0, 0, 0, 0x0f, 0x05];
    let (m, _pt, mut ctx) = setup(kind, &code);
    let mut v = m.acquire().unwrap();
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
    for kind in PLATFORMS {
        faults(kind);
    }
}

fn faults(kind: PlatformKind) {
    // mov rax, [0x1000]  (unmapped) ; ud2 ; mov byte [CODE], 1 (read-only) ; xor ecx,ecx; div ecx
    let mut code = vec![0x48, 0x8b, 0x04, 0x25, 0x00, 0x10, 0x00, 0x00];
    code.extend([0x0f, 0x0b]);
    code.extend([0xc6, 0x04, 0x25, 0x00, 0x00, 0x40, 0x00, 0x01]);
    code.extend([0x31, 0xc9, 0xf7, 0xf1]);
    code.extend([0xcc]);
    let (m, _pt, mut ctx) = setup(kind, &code);
    let mut v = m.acquire().unwrap();
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

/// Registers and FS base survive the trip, and what the Sentry changes is what the program
/// sees next; the FPU state is the program's own.
#[test]
fn registers_fs_base_and_fpu_state_round_trip() {
    for kind in PLATFORMS {
        registers(kind);
    }
}

fn registers(kind: PlatformKind) {
    // syscall; mov rax, fs:[0]; syscall  (the Sentry sets FS base between the two)
    let code = [0x0f, 0x05, 0x64, 0x48, 0x8b, 0x04, 0x25, 0, 0, 0, 0, 0x0f, 0x05];
    let (m, _pt, mut ctx) = setup(kind, &code);
    ctx.regs.rbx = 0x1111;
    ctx.regs.r15 = 0xf0f0_f0f0_f0f0_f0f0;
    ctx.regs.rax = 500;
    let mut v = m.acquire().unwrap();
    v.bind_current_thread();
    assert_eq!(v.run(&mut ctx).unwrap(), Exit::Syscall, "{kind:?}");
    assert_eq!((ctx.regs.rax, ctx.regs.rbx, ctx.regs.r15), (500, 0x1111, 0xf0f0_f0f0_f0f0_f0f0));
    // syscall leaves the return address in rcx and the flags in r11.
    assert_eq!((ctx.regs.rcx, ctx.regs.r11 & 0x2), (CODE + 2, 0x2), "{kind:?}");
    let mut fpu = v.get_fpu().unwrap();
    fpu.region[6] = 0x1f80 | 0x6000; // MXCSR: round toward zero
    fpu.region[128] |= 0x3; // XSTATE_BV: x87 and SSE state in use (not their initial values)
    v.set_fpu(&fpu).unwrap();
    assert_eq!(v.get_fpu().unwrap().region[6], 0x1f80 | 0x6000, "{kind:?}");
    ctx.fs_base = DATA;
    m.phys().mem.write(pt_frame_of(&m, &_pt, DATA), &0x5a5a_u64.to_le_bytes());
    assert_eq!(v.run(&mut ctx).unwrap(), Exit::Syscall, "{kind:?}");
    assert_eq!(ctx.regs.rax, 0x5a5a, "{kind:?}: fs:[0] read through the FS base set");
    assert_eq!(ctx.fs_base, DATA);
    // MXCSR bits the CPU does not have are refused, not loaded.
    fpu.region[6] = 0xffff_0000;
    assert!(v.set_fpu(&fpu).is_err(), "{kind:?}");
    m.release(v);
}

fn pt_frame_of(m: &Arc<dyn Platform>, pt: &PageTables, va: u64) -> sentry_kvm::mm::PhysAddr {
    pt.get(m.phys(), VirtAddr(va)).expect("mapped").frame()
}

/// Application code that jumps into the stub's own code to make a syscall the stub never makes
/// ends its stub (the filter kills it): the Sentry sees an error, not a host syscall made.
#[test]
fn a_jump_into_the_stub_cannot_make_host_syscalls() {
    let target = sentry_kvm::platform::systrap::stub_syscall_address();
    // mov eax, 39; movabs rcx, target; jmp rcx
    let mut code = vec![0xb8, 39, 0, 0, 0, 0x48, 0xb9];
    code.extend(target.to_le_bytes());
    code.extend([0xff, 0xe1]);
    let (m, _pt, mut ctx) = setup(PlatformKind::Systrap, &code);
    let mut v = m.acquire().unwrap();
    v.bind_current_thread();
    let e = v.run(&mut ctx);
    assert!(e.is_err(), "{e:?}");
}
