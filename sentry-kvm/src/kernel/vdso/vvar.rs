//! The vDSO's data page (`[vvar]`): one guest frame per sandbox that the Sentry writes and every
//! process maps read-only. Its layout is `struct vvar` in vdso/vdso.c; readers retry while the
//! sequence number is odd or changes under them (a seqlock), so they never see a half-written
//! update.

use crate::sync::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

use crate::mm::mappable::Mappable;
use crate::mm::{PAGE_SIZE, PhysAddr, Physical};
use crate::platform::kvm::tsc;

/// `clock_mode`: the vDSO computes time from the TSC.
pub const VCLOCK_TSC: u32 = 1;
/// `getcpu_mode`: the vDSO reads the CPU number with RDTSCP.
pub const VGETCPU_RDTSCP: u32 = 1;

/// The clocks the vDSO answers, in the order of `vvar.clocks`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VClock {
    Realtime = 0,
    Monotonic = 1,
    MonotonicRaw = 2,
    Boottime = 3,
}

pub const VCLOCKS: [VClock; 4] =
    [VClock::Realtime, VClock::Monotonic, VClock::MonotonicRaw, VClock::Boottime];

const OFF_SEQ: u64 = 0;
const OFF_CLOCK_MODE: u64 = 4;
const OFF_GETCPU_MODE: u64 = 8;
const OFF_NCPUS: u64 = 12;
const OFF_TSC_BASE: u64 = 16;
const OFF_CLOCKS: u64 = 24;
const CLOCK_SIZE: u64 = 16;

/// One clock's line: its value at `tsc_base`, and nanoseconds per tick in 32.32 fixed point.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Line {
    pub base_ns: u64,
    pub mult: u64,
}

impl Line {
    /// The clock's value at `tsc` on this line (as the vDSO computes it).
    pub fn at(self, tsc_base: u64, tsc: u64) -> u64 {
        let delta = tsc.saturating_sub(tsc_base);
        self.base_ns.wrapping_add(((u128::from(delta) * u128::from(self.mult)) >> 32) as u64)
    }
}

/// Everything an update publishes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Params {
    pub tsc_base: u64,
    pub lines: [Line; 4],
}

/// The data page: its frame, and the only writer.
pub struct Vvar {
    phys: Arc<Physical>,
    frame: PhysAddr,
    writer: Mutex<()>,
}

impl Vvar {
    pub fn new(phys: Arc<Physical>, ncpus: u32) -> Result<Arc<Vvar>, crate::abi::Errno> {
        let frame = phys.alloc_frame().map_err(|_| crate::abi::Errno::ENOMEM)?;
        phys.mem.zero(frame, PAGE_SIZE);
        let v = Arc::new(Vvar { phys, frame, writer: Mutex::new(()) });
        v.u32_at(OFF_NCPUS).store(ncpus, Ordering::Relaxed);
        Ok(v)
    }

    fn u32_at(&self, off: u64) -> &AtomicU32 {
        let p = self.phys.mem.ptr(PhysAddr(self.frame.0 + off), 4).expect("vvar frame in memory");
        // SAFETY: `p` is 4-aligned (offsets are) inside a frame this struct owns a reference
        // to, so it stays mapped for `self`'s life; the guest only reads it, and every Sentry
        // access is atomic.
        unsafe { &*(p as *const AtomicU32) }
    }

    fn u64_at(&self, off: u64) -> &AtomicU64 {
        let p = self.phys.mem.ptr(PhysAddr(self.frame.0 + off), 8).expect("vvar frame in memory");
        // SAFETY: as in `u32_at`, 8-aligned.
        unsafe { &*(p as *const AtomicU64) }
    }

    /// What the page holds now.
    pub fn params(&self) -> Params {
        let mut p = Params {
            tsc_base: self.u64_at(OFF_TSC_BASE).load(Ordering::Acquire),
            ..Default::default()
        };
        for (i, l) in p.lines.iter_mut().enumerate() {
            let off = OFF_CLOCKS + i as u64 * CLOCK_SIZE;
            l.base_ns = self.u64_at(off).load(Ordering::Acquire);
            l.mult = self.u64_at(off + 8).load(Ordering::Acquire);
        }
        p
    }

    /// Publishes new lines. `compute` gets the TSC read after readers were told an update is
    /// under way: a reader that keeps the old lines read its TSC before that, so a clock that
    /// `compute` keeps at or above its old line at that TSC never goes backwards.
    pub fn publish(&self, compute: impl FnOnce(u64, &Params) -> Params) {
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.params();
        let seq = self.u32_at(OFF_SEQ);
        let s = seq.load(Ordering::Relaxed);
        seq.store(s.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::SeqCst);
        let now = tsc::rdtsc();
        let p = compute(now, &old);
        self.u64_at(OFF_TSC_BASE).store(p.tsc_base, Ordering::Relaxed);
        for (i, l) in p.lines.iter().enumerate() {
            let off = OFF_CLOCKS + i as u64 * CLOCK_SIZE;
            self.u64_at(off).store(l.base_ns, Ordering::Relaxed);
            self.u64_at(off + 8).store(l.mult, Ordering::Relaxed);
        }
        seq.store(s.wrapping_add(2), Ordering::Release);
    }

    pub fn set_clock_mode(&self, mode: u32) {
        self.u32_at(OFF_CLOCK_MODE).store(mode, Ordering::Release);
    }

    pub fn clock_mode(&self) -> u32 {
        self.u32_at(OFF_CLOCK_MODE).load(Ordering::Acquire)
    }

    pub fn set_getcpu_mode(&self, mode: u32) {
        self.u32_at(OFF_GETCPU_MODE).store(mode, Ordering::Release);
    }
}

impl Drop for Vvar {
    fn drop(&mut self) {
        self.phys.release_frames(&[self.frame]);
    }
}

/// The page as mapping backing: the same frame for every process, mapped read-only.
pub struct VvarMapping(pub Arc<Vvar>);

impl Mappable for VvarMapping {
    fn page(&self, index: u64) -> Result<PhysAddr, crate::abi::Errno> {
        if index != 0 {
            return Err(crate::abi::Errno::EFAULT);
        }
        self.0.phys.frames.incref(self.0.frame);
        Ok(self.0.frame)
    }
}
