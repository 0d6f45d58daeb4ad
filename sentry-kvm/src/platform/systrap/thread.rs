//! A CPU of the systrap platform: one stub thread in the stub process of the address space the
//! task runs in, driven through its slot's message page.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use super::Shared;
use super::layout::{self, SPIN_LIMIT, msg, reg, state};
use super::process::{KICK_SIGNAL, StubProcess};
use crate::mm::page_table::PageTables;
use crate::mm::{PAGE_SIZE, PhysAddr, VirtAddr};
use crate::platform::{Cpu, Exit, Fpu, Kick, PlatformError, Regs, UserContext};

const AUDIT_ARCH_X86_64: u64 = 0xc000_003e;
/// Where the signal frame's `fpstate` pointer is in a ucontext.
const UC_FPSTATE: u64 = 40 + 23 * 8;
/// The software-reserved bytes of the legacy FXSAVE area, which describe the frame's XSAVE area.
const SW_RESERVED: usize = 464;
const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;
const FXSAVE_SIZE: usize = 512;
const XSAVE_HEADER_END: usize = 576;
const PF_WRITE: u64 = 1 << 1;
const PF_FETCH: u64 = 1 << 4;
/// Pages a fault maps at once: the aligned window around it (at most one run each).
const AROUND: u64 = 64;
/// A page mapped this many times in a row and still faulting is a bug, not progress.
const REFAULT_LIMIT: u32 = 8;

/// Who to interrupt: the stub thread running this CPU's application code, if any; and how
/// long application code ran there.
pub struct StubKick {
    kicked: AtomicBool,
    /// pid << 32 | tid, or 0.
    target: AtomicU64,
    /// Nanoseconds of application code in finished runs since the binding...
    ran_ns: AtomicU64,
    /// ...and when the current run started (ns since `epoch`), or 0.
    running_since: AtomicU64,
    epoch: std::time::Instant,
}

impl StubKick {
    fn now_ns(&self) -> u64 {
        (self.epoch.elapsed().as_nanos() as u64).max(1)
    }

    fn started(&self) {
        self.running_since.store(self.now_ns(), Ordering::Release);
    }

    fn stopped(&self) {
        let since = self.running_since.swap(0, Ordering::AcqRel);
        if since != 0 {
            self.ran_ns.fetch_add(self.now_ns().saturating_sub(since), Ordering::AcqRel);
        }
    }
}

impl Kick for StubKick {
    /// Wall time of the stub thread's runs: it never blocks in application code (every blocking
    /// call is the Sentry's), so this is its CPU time but for host preemption.
    fn app_time(&self) -> std::time::Duration {
        let since = self.running_since.load(Ordering::Acquire);
        let running = if since == 0 { 0 } else { self.now_ns().saturating_sub(since) };
        std::time::Duration::from_nanos(self.ran_ns.load(Ordering::Acquire) + running)
    }

    fn kick(&self) {
        self.kicked.store(true, Ordering::Release);
        let t = self.target.load(Ordering::Acquire);
        if t != 0 {
            // SAFETY: tgkill of a stub thread; a stale one fails with ESRCH.
            unsafe { libc::syscall(libc::SYS_tgkill, (t >> 32) as i32, t as i32, KICK_SIGNAL) };
        }
    }
}

/// Counts a Sentry thread in [`Cpu::run`] for as long as it is there.
struct Running<'a> {
    counter: &'a AtomicUsize,
    /// How many were there with this one when it came.
    count: usize,
}

impl<'a> Running<'a> {
    fn enter(counter: &'a AtomicUsize) -> Running<'a> {
        let count = counter.fetch_add(1, Ordering::AcqRel) + 1;
        Running { counter, count }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::AcqRel);
    }
}

struct Attached {
    root: u64,
    stub: Arc<StubProcess>,
    slot: u64,
    tid: i32,
    /// Where the stub thread may run (see `process::place`).
    placed: i32,
}

pub struct StubCpu {
    shared: Arc<Shared>,
    index: u64,
    kick: Arc<StubKick>,
    attached: Option<Attached>,
    /// FPU state set while no stub thread was attached, loaded into the next one.
    pending_fpu: Option<Box<Fpu>>,
    /// A page fault handed to the kernel: its page (and neighbours) are mapped before the next
    /// run rather than faulted on again.
    faulted: Option<u64>,
    /// This thread's involuntary context switches when a poll last ran out, and the runs
    /// left without polling.
    preempted: u64,
    backoff: u32,
}

/// Runs without polling after the host preempted a polling thread.
const POLL_BACKOFF: u32 = 256;

/// The calling thread's involuntary context switches so far.
fn involuntary_switches() -> u64 {
    // SAFETY: getrusage fills a zeroed struct of ours.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut u);
        u.ru_nivcsw as u64
    }
}

impl StubCpu {
    pub(super) fn new(shared: Arc<Shared>, index: u64) -> StubCpu {
        let kick = Arc::new(StubKick {
            kicked: AtomicBool::new(false),
            target: AtomicU64::new(0),
            ran_ns: AtomicU64::new(0),
            running_since: AtomicU64::new(0),
            epoch: std::time::Instant::now(),
        });
        StubCpu {
            shared,
            index,
            kick,
            attached: None,
            pending_fpu: None,
            faulted: None,
            preempted: 0,
            backoff: 0,
        }
    }

    /// Ends the stub thread, if any (the task left its address space or ended).
    pub(super) fn detach(&mut self) {
        if let Some(a) = self.attached.take() {
            super::process::hold(None);
            if let Ok(fpu) = self.fpu_of(&a) {
                self.pending_fpu = Some(Box::new(fpu));
            }
            self.kick.target.store(0, Ordering::Release);
            a.stub.end_thread(a.slot);
        }
    }

    /// The stub thread for the address space `root`, started if needed.
    fn attach(&mut self, root: u64) -> Result<(), PlatformError> {
        let stub = self.shared.stub_for(root)?;
        if let Some(a) = &self.attached
            && a.root == root
            && Arc::ptr_eq(&a.stub, &stub)
        {
            return Ok(());
        }
        self.detach();
        let (slot, tid) = stub.new_thread()?;
        self.kick.target.store((stub.pid as u64) << 32 | tid as u32 as u64, Ordering::Release);
        let a = Attached { root, stub, slot, tid, placed: super::process::UNPLACED };
        if let Some(fpu) = self.pending_fpu.take() {
            // A state the frame refuses leaves the stub thread's own (clean) one.
            let _ = self.load_fpu(&a, &fpu);
        }
        self.attached = Some(a);
        Ok(())
    }

    /// Maps the page at `addr` in the stub from the page table, if the access `err` is allowed
    /// there, with the present pages around it (the kernel fills a fault's neighbours too);
    /// false if the Sentry's kernel must handle the fault.
    fn map_from_table(&self, a: &Attached, addr: u64, err: u64) -> Result<bool, PlatformError> {
        if addr >= layout::BASE {
            return Ok(false);
        }
        let page = addr & !(PAGE_SIZE - 1);
        let mut mapped = a.stub.map_lock.lock().unwrap_or_else(|e| e.into_inner());
        let phys = &self.shared.phys;
        let table = PageTables::bare(PhysAddr(a.root));
        let prot_of = |va: u64| -> Option<(u64, u64)> {
            let pte = table.get(phys, VirtAddr(va))?;
            if !pte.user_accessible() || pte.frame().0 + PAGE_SIZE > phys.mem.size() {
                return None;
            }
            let mut prot = libc::PROT_READ as u64;
            if pte.writable() {
                prot |= libc::PROT_WRITE as u64;
            }
            if pte.executable() {
                prot |= libc::PROT_EXEC as u64;
            }
            Some((pte.frame().0, prot))
        };
        let Some((_, prot)) = prot_of(page) else { return Ok(false) };
        if (err & PF_WRITE != 0 && prot & libc::PROT_WRITE as u64 == 0)
            || (err & PF_FETCH != 0 && prot & libc::PROT_EXEC as u64 == 0)
        {
            return Ok(false);
        }
        // The aligned window around the page, but for what the stub maps already (the faulting
        // page itself may be there with fewer rights than its entry now gives); runs of
        // contiguous frames with the same rights become one mapping.
        let start = page & !(AROUND * PAGE_SIZE - 1);
        let end = (start + AROUND * PAGE_SIZE).min(layout::BASE);
        let mut maps: Vec<(u64, u64, u64, u64)> = Vec::new();
        let mut va = start;
        while va < end {
            let wanted = va == page || !mapped.contains(&va);
            if let Some((frame, prot)) = prot_of(va).filter(|_| wanted) {
                match maps.last_mut() {
                    Some(m) if m.0 + m.1 == va && m.3 + m.1 == frame && m.2 == prot => {
                        m.1 += PAGE_SIZE
                    }
                    _ => maps.push((va, PAGE_SIZE, prot, frame)),
                }
            }
            va += PAGE_SIZE;
        }
        for chunk in maps.chunks(layout::msg::BATCH_MAX) {
            let r = a.stub.map_on(a.slot, chunk)?;
            if r != 0 {
                return Err(PlatformError::UnexpectedExit(format!(
                    "stub mmap near {page:#x}: {r}"
                )));
            }
        }
        for m in &maps {
            mapped.extend((m.0..m.0 + m.1).step_by(PAGE_SIZE as usize));
        }
        Ok(true)
    }

    /// The signal frame's XSAVE area of the (stopped) stub thread, and its size.
    fn frame_fpu(&self, a: &Attached) -> Result<(*mut u8, usize), PlatformError> {
        let p = a.stub.region.page(a.slot);
        let bad =
            || PlatformError::UnexpectedExit("a stub's signal frame is not in its slot".into());
        let uc = a
            .stub
            .region
            .slot_bytes(a.slot, p.get(msg::UCONTEXT), UC_FPSTATE + 8)
            .ok_or_else(bad)?;
        // SAFETY: `uc` points at UC_FPSTATE + 8 bytes inside the slot (checked).
        let fp_addr = unsafe { std::ptr::read_volatile(uc.add(UC_FPSTATE as usize).cast::<u64>()) };
        let head = a.stub.region.slot_bytes(a.slot, fp_addr, FXSAVE_SIZE as u64).ok_or_else(bad)?;
        let word = |at: usize| -> u32 {
            // SAFETY: `at + 4 <= FXSAVE_SIZE`, inside the checked range.
            unsafe { std::ptr::read_volatile(head.add(at).cast::<u32>()) }
        };
        let size = if word(SW_RESERVED) == FP_XSTATE_MAGIC1 {
            (word(SW_RESERVED + 20) as usize).clamp(FXSAVE_SIZE, std::mem::size_of::<Fpu>())
        } else {
            FXSAVE_SIZE
        };
        let area = a.stub.region.slot_bytes(a.slot, fp_addr, size as u64).ok_or_else(bad)?;
        Ok((area, size))
    }

    fn fpu_of(&self, a: &Attached) -> Result<Fpu, PlatformError> {
        let (area, size) = self.frame_fpu(a)?;
        let mut fpu = Fpu::default();
        // SAFETY: `size` bytes at `area` are inside the slot; the destination holds 4 KiB.
        unsafe { std::ptr::copy_nonoverlapping(area, fpu.region.as_mut_ptr().cast::<u8>(), size) };
        Ok(fpu)
    }

    /// Writes `fpu` into the frame, keeping the frame's own description of itself; refuses
    /// what the kernel's sigreturn would refuse (and kill the stub for).
    fn load_fpu(&self, a: &Attached, fpu: &Fpu) -> Result<(), PlatformError> {
        let (area, size) = self.frame_fpu(a)?;
        // SAFETY: the Fpu region is 4096 plain bytes.
        let src: &[u8] = unsafe {
            std::slice::from_raw_parts(fpu.region.as_ptr().cast::<u8>(), std::mem::size_of::<Fpu>())
        };
        let u32_at =
            |b: &[u8], at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let u64_at =
            |b: &[u8], at: usize| u64::from(u32_at(b, at)) | u64::from(u32_at(b, at + 4)) << 32;
        // SAFETY: `size` bytes at `area` are inside the slot.
        let frame: &mut [u8] = unsafe { std::slice::from_raw_parts_mut(area, size) };
        let mxcsr_mask = match u32_at(frame, 28) {
            0 => 0xffbf,
            m => m,
        };
        let invalid = PlatformError::Config("FPU state the host refuses".into());
        if u32_at(src, 24) & !mxcsr_mask != 0 {
            return Err(invalid);
        }
        let has_xsave = size > XSAVE_HEADER_END;
        if has_xsave {
            let features = u64_at(frame, SW_RESERVED + 8);
            // XSTATE_BV within the frame's features; no compacted format; reserved bytes zero.
            if u64_at(src, 512) & !features != 0
                || src[520..XSAVE_HEADER_END].iter().any(|b| *b != 0)
            {
                return Err(invalid);
            }
        }
        frame[..SW_RESERVED].copy_from_slice(&src[..SW_RESERVED]);
        if size > FXSAVE_SIZE {
            frame[FXSAVE_SIZE..size].copy_from_slice(&src[FXSAVE_SIZE..size]);
        }
        Ok(())
    }
}

fn regs_from(p: super::process::Page) -> (Regs, [u64; reg::COUNT]) {
    let mut g = [0u64; reg::COUNT];
    for (i, v) in g.iter_mut().enumerate() {
        *v = p.get(msg::REGS + 8 * i as u64);
    }
    let r = Regs {
        r8: g[reg::R8],
        r9: g[reg::R9],
        r10: g[reg::R10],
        r11: g[reg::R11],
        r12: g[reg::R12],
        r13: g[reg::R13],
        r14: g[reg::R14],
        r15: g[reg::R15],
        rdi: g[reg::RDI],
        rsi: g[reg::RSI],
        rbp: g[reg::RBP],
        rbx: g[reg::RBX],
        rdx: g[reg::RDX],
        rax: g[reg::RAX],
        rcx: g[reg::RCX],
        rsp: g[reg::RSP],
        rip: g[reg::RIP],
        rflags: g[reg::EFLAGS],
    };
    (r, g)
}

fn regs_to(p: super::process::Page, r: &Regs) {
    let g = [
        (reg::R8, r.r8),
        (reg::R9, r.r9),
        (reg::R10, r.r10),
        (reg::R11, r.r11),
        (reg::R12, r.r12),
        (reg::R13, r.r13),
        (reg::R14, r.r14),
        (reg::R15, r.r15),
        (reg::RDI, r.rdi),
        (reg::RSI, r.rsi),
        (reg::RBP, r.rbp),
        (reg::RBX, r.rbx),
        (reg::RDX, r.rdx),
        (reg::RAX, r.rax),
        (reg::RCX, r.rcx),
        (reg::RSP, r.rsp),
        (reg::RIP, r.rip),
        (reg::EFLAGS, r.rflags),
    ];
    for (i, v) in g {
        p.set(msg::REGS + 8 * i as u64, v);
    }
}

impl Cpu for StubCpu {
    fn run(&mut self, ctx: &mut UserContext) -> Result<Exit, PlatformError> {
        if self.kick.kicked.swap(false, Ordering::AcqRel) {
            return Ok(Exit::Interrupted);
        }
        super::process::hold(None);
        self.attach(ctx.cr3)?;
        let running = Running::enter(&self.shared.running);
        // Both sides poll while every running pair of threads can have two CPUs; past that,
        // polling would take the CPU from the thread it waits for. And not for a while after
        // the host preempted a poller: it is busy, a poller takes CPU time its partner needs,
        // and a hand-off on one CPU is what stays fast.
        self.backoff = self.backoff.saturating_sub(1);
        let polling = running.count * 2 <= super::process::host_cpus() && self.backoff == 0;
        if let Some(a) = self.attached.as_mut() {
            super::process::place(a.tid, &mut a.placed, polling);
        }
        let faulted = self.faulted.take();
        let a = self.attached.as_ref().ok_or_else(|| PlatformError::Config("no stub".into()))?;
        let p = a.stub.region.page(a.slot);
        p.set_polling(if polling { SPIN_LIMIT } else { 0 });
        if let Some(addr) = faulted {
            self.map_from_table(a, addr, 0)?;
        }
        regs_to(p, &ctx.regs);
        p.set(msg::FS_BASE, ctx.fs_base);
        let (mut last_mapped, mut refaults) = (None, 0);
        loop {
            self.kick.started();
            p.hand_over(state::RESUME);
            let trapped = a.stub.wait_state_polled(p, state::TRAPPED);
            self.kick.stopped();
            if polling && !trapped? {
                // A poll ran out: the application computed a while (which is fine), or the host
                // preempted this thread or its stub's (it is busy: stop polling a while).
                let preempted = involuntary_switches();
                if self.preempted != 0 && preempted > self.preempted {
                    self.backoff = POLL_BACKOFF;
                }
                self.preempted = preempted;
            }
            super::process::hold(Some((a.stub.pid, a.slot)));
            let (regs, g) = regs_from(p);
            let signo = p.get(msg::SIGNO) as i32;
            let (trapno, err) = (g[reg::TRAPNO], g[reg::ERR]);
            if signo == libc::SIGSEGV || signo == libc::SIGBUS {
                let addr = p.get(msg::ADDR);
                if trapno == 14 && self.map_from_table(a, addr, err)? {
                    let page = addr & !(PAGE_SIZE - 1);
                    refaults = if last_mapped == Some(page) { refaults + 1 } else { 0 };
                    last_mapped = Some(page);
                    if refaults >= REFAULT_LIMIT {
                        return Err(PlatformError::UnexpectedExit(format!(
                            "the stub faults at {addr:#x} (error {err:#x}) however it is mapped"
                        )));
                    }
                    continue;
                }
                if trapno == 14 {
                    self.faulted = Some(addr);
                }
                ctx.regs = regs;
                ctx.fs_base = p.get(msg::FS_BASE);
                return Ok(Exit::Fault { vector: trapno as u8, error_code: err, addr });
            }
            ctx.regs = regs;
            ctx.fs_base = p.get(msg::FS_BASE);
            self.kick.kicked.store(false, Ordering::Release);
            return Ok(match signo {
                libc::SIGSYS => {
                    let call = p.get(msg::SYSCALL);
                    if call >> 32 != AUDIT_ARCH_X86_64 {
                        Exit::Fault { vector: 13, error_code: 0, addr: 0 }
                    } else {
                        ctx.regs.rax = call & 0xffff_ffff;
                        Exit::Syscall
                    }
                }
                KICK_SIGNAL => Exit::Interrupted,
                _ => Exit::Fault { vector: trapno as u8, error_code: err, addr: 0 },
            });
        }
    }

    fn get_fpu(&self) -> Result<Fpu, PlatformError> {
        match &self.attached {
            Some(a) => self.fpu_of(a),
            None => Ok(self
                .pending_fpu
                .as_deref()
                .map(crate::platform::copy_fpu)
                .unwrap_or_else(super::clean_fpu)),
        }
    }

    fn set_fpu(&mut self, state: &Fpu) -> Result<(), PlatformError> {
        match &self.attached {
            Some(a) => self.load_fpu(a, state),
            None => {
                self.pending_fpu = Some(Box::new(crate::platform::copy_fpu(state)));
                Ok(())
            }
        }
    }

    fn index(&self) -> u64 {
        self.index
    }

    fn tsc_aligned(&self) -> bool {
        // Application code runs on the host CPU: its TSC is the host's.
        true
    }

    fn bind_current_thread(&self) -> Arc<dyn Kick> {
        self.kick.ran_ns.store(0, Ordering::Release);
        self.kick.clone()
    }
}
