//! The systrap platform: application code runs natively in stub processes, one per address
//! space, under a seccomp filter that turns every syscall into a SIGSYS. The stub's handler
//! hands the registers to the Sentry through shared memory and a futex, and resumes with what
//! the Sentry wrote back. Where a KVM exit is expensive (nested hosts), this round trip is an
//! order of magnitude cheaper. Guest memory is the same memfd as on KVM: a stub maps the
//! frames its page table names, page by page as application code faults on them, and drops
//! them when the Sentry changes the table (see `mm::Mirror`). docs/sentry-security.md has
//! what the stub may do and why.

mod code;
mod filter;
mod layout;
mod process;
mod spawner;
mod thread;

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::mm::frames::{FrameAllocator, TranslationFlush};
use crate::mm::phys::PhysMemory;
use crate::mm::{Mirror, PhysAddr, Physical};
use crate::platform::kvm::layout::REGION_SIZE;
use crate::platform::{Cpu, Fpu, Platform, PlatformError};
use crate::sync::Mutex;
use process::StubProcess;
use thread::StubCpu;

pub use layout::BASE as STUB_REGION;

/// Freed frames a sandbox keeps for reuse (8 MiB): what a short-lived process (a Python
/// start-up) frees and the next one allocates, without a hole punched and a page faulted in
/// anew by the host for each. Stubs drop their mappings of a frame before it is freed, so no
/// translation of a kept frame survives.
const RECYCLED_FRAMES: usize = 2048;

/// The stubs of a sandbox, by the root of the address space each runs.
pub(crate) struct Stubs {
    by_root: Mutex<HashMap<u64, Arc<StubProcess>>>,
}

impl Mirror for Stubs {
    fn invalidate(&self, root: PhysAddr, start: u64, end: u64) {
        let stub = self.by_root.lock().unwrap_or_else(|e| e.into_inner()).get(&root.0).cloned();
        if let Some(s) = stub {
            s.unmap(start, end);
        }
    }

    fn dropped(&self, root: PhysAddr) {
        self.by_root.lock().unwrap_or_else(|e| e.into_inner()).remove(&root.0);
    }
}

/// A page-table frame may be reused once no stub thread is between reading a table and mapping
/// what it found: taking every stub's map lock waits for those.
impl TranslationFlush for Stubs {
    fn flush_all(&self) {
        let stubs: Vec<_> =
            self.by_root.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        for s in stubs {
            drop(s.map_lock.lock().unwrap_or_else(|e| e.into_inner()));
        }
    }
}

pub(crate) struct Shared {
    phys: Arc<Physical>,
    stubs: Arc<Stubs>,
    spawner: spawner::Spawner,
    guest_fd: i32,
    /// Sentry threads running application code (or handling its trap) now.
    running: std::sync::atomic::AtomicUsize,
}

impl Shared {
    /// The stub of the address space `root`, started on first use.
    fn stub_for(&self, root: u64) -> Result<Arc<StubProcess>, PlatformError> {
        let mut map = self.stubs.by_root.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = map.get(&root) {
            return Ok(s.clone());
        }
        let s = Arc::new(StubProcess::start(self.guest_fd, &self.spawner)?);
        map.insert(root, s.clone());
        Ok(s)
    }
}

pub struct Systrap {
    shared: Arc<Shared>,
    pool: Mutex<Vec<StubCpu>>,
    next_cpu: AtomicU64,
}

impl Systrap {
    /// A platform with `mem_size` bytes of (sparse) guest memory.
    pub fn new(mem_size: u64) -> Result<Arc<Systrap>, PlatformError> {
        let limit = crate::platform::kvm::machine::MAX_MEMORY;
        if !(REGION_SIZE + (16 << 20)..=limit).contains(&mem_size) {
            return Err(PlatformError::Config(format!(
                "sandbox memory must be between {} MiB and {} MiB",
                (REGION_SIZE >> 20) + 16,
                limit >> 20
            )));
        }
        let mem = PhysMemory::new(mem_size).map_err(|e| PlatformError::Config(e.to_string()))?;
        let guest_fd = mem.fd().as_raw_fd();
        let stubs = Arc::new(Stubs { by_root: Mutex::new(HashMap::new()) });
        // The first frames stay unused, as on KVM (the address spaces' layout is the same).
        let frames = FrameAllocator::recycling(PhysAddr(REGION_SIZE), mem.size(), RECYCLED_FRAMES);
        let phys =
            Arc::new(Physical { mem, frames, flush: stubs.clone(), mirror: Some(stubs.clone()) });
        let spawner = spawner::Spawner::new()?;
        Ok(Arc::new(Systrap {
            shared: Arc::new(Shared {
                phys,
                stubs,
                spawner,
                guest_fd,
                running: Default::default(),
            }),
            pool: Mutex::new(Vec::new()),
            next_cpu: AtomicU64::new(0),
        }))
    }
}

impl Platform for Systrap {
    fn phys(&self) -> &Arc<Physical> {
        &self.shared.phys
    }

    fn acquire(&self) -> Result<Box<dyn Cpu>, PlatformError> {
        if let Some(c) = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(Box::new(c));
        }
        let index = self.next_cpu.fetch_add(1, Ordering::Relaxed);
        Ok(Box::new(StubCpu::new(self.shared.clone(), index)))
    }

    fn release(&self, cpu: Box<dyn Cpu>) {
        if let Ok(mut c) = (cpu as Box<dyn std::any::Any>).downcast::<StubCpu>() {
            c.detach();
            self.pool.lock().unwrap_or_else(|e| e.into_inner()).push(*c);
        }
    }
}

/// The FPU state of a fresh process (FCW 0x37f, MXCSR 0x1f80, x87 and SSE state present).
pub fn clean_fpu() -> Fpu {
    let mut f = Fpu::default();
    f.region[0] = 0x037f;
    f.region[6] = 0x1f80;
    f.region[7] = 0xffff;
    f.region[128] = 0x3;
    f
}

/// What application code sees of the TSC here: the host's own, on the host's CPUs.
pub fn time_probe() -> crate::platform::kvm::tsc::TimeProbe {
    use crate::platform::kvm::tsc::{CpuNumber, TimeProbe, host_tsc_invariant, rdtsc};
    let khz = {
        let clock = || {
            let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            // SAFETY: reads a clock into a local.
            unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_RAW, &mut ts) };
            ts.tv_sec as f64 * 1e9 + ts.tv_nsec as f64
        };
        // 2 ms against the raw monotonic clock: a few parts in 10^5, which the vDSO's
        // timekeeper corrects as it goes.
        let (t0, c0) = (clock(), rdtsc());
        let mut t1 = t0;
        while t1 - t0 < 2e6 {
            t1 = clock();
        }
        let c1 = rdtsc();
        ((c1 - c0) as f64 / ((t1 - t0) / 1e6)) as u32
    };
    TimeProbe { tsc_usable: host_tsc_invariant(), tsc_khz: khz, cpu_number: CpuNumber::HostCpu }
}

/// The address of a `syscall` instruction in every stub's code: what application code could
/// jump to, and what the stub's filter keeps to the stub's own calls (tests jump there).
pub fn stub_syscall_address() -> u64 {
    let c = code::stub_code();
    let from = c.syscalls.start as usize;
    let at = c.bytes[from..].windows(2).position(|w| w == [0x0f, 0x05]).unwrap_or(0);
    layout::BASE + (from + at) as u64
}
