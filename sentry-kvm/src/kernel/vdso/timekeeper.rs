//! Keeps the vDSO's clock lines on the host's clocks. Each update samples every host clock next
//! to the TSC, measures each clock's rate over the last period, and publishes a line that
//! starts no lower than the old one (monotonic clocks never go backwards across an update) and
//! reaches the host's clock again by the next update: errors are slewed away, not stepped.
//! A clock the host stepped (REALTIME set, BOOTTIME after a suspend) is stepped with it; a
//! monotonic clock that ran away from the host means the TSC cannot be trusted, and every read
//! goes back to the syscall (as Linux does when its clocksource stops being usable by the vDSO).

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::vvar::{Line, Params, VCLOCK_TSC, VCLOCKS, VClock, Vvar};
use crate::platform::kvm::tsc::rdtsc;

/// Time between updates once running; the first comes sooner to refine the initial rate.
const PERIOD: Duration = Duration::from_secs(1);
const FIRST_PERIOD: Duration = Duration::from_millis(100);
/// A gap this large between the published line and the host clock is a step of that clock
/// (or, for a monotonic clock, a TSC that is not usable).
const STEP_NS: u64 = 50_000_000;

fn host_clock_id(c: VClock) -> libc::clockid_t {
    match c {
        VClock::Realtime => libc::CLOCK_REALTIME,
        VClock::Monotonic => libc::CLOCK_MONOTONIC,
        VClock::MonotonicRaw => libc::CLOCK_MONOTONIC_RAW,
        VClock::Boottime => libc::CLOCK_BOOTTIME,
    }
}

/// A host clock's value in ns.
pub fn host_ns(id: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime into a local.
    unsafe { libc::clock_gettime(id, &mut ts) };
    (ts.tv_sec as u64).wrapping_mul(1_000_000_000).wrapping_add(ts.tv_nsec as u64)
}

/// One host clock read with the TSC around it: the narrowest of a few tries.
#[derive(Clone, Copy, Debug)]
struct Sample {
    tsc: u64,
    ns: u64,
}

fn sample(c: VClock) -> Sample {
    let id = host_clock_id(c);
    let mut best: Option<(u64, Sample)> = None;
    for _ in 0..3 {
        let a = rdtsc();
        let ns = host_ns(id);
        let b = rdtsc();
        let width = b.wrapping_sub(a);
        if best.is_none_or(|(w, _)| width < w) {
            best = Some((width, Sample { tsc: a + width / 2, ns }));
        }
    }
    best.map(|(_, s)| s).unwrap_or(Sample { tsc: 0, ns: 0 })
}

/// Nanoseconds per tick, 32.32 fixed point.
type Rate = u64;

fn rate_from_khz(khz: u32) -> Rate {
    ((1_000_000u128 << 32) / u128::from(khz.max(1))) as u64
}

fn rate_between(a: Sample, b: Sample) -> Option<Rate> {
    let ticks = b.tsc.checked_sub(a.tsc).filter(|t| *t > 0)?;
    let ns = b.ns.checked_sub(a.ns)?;
    Some(((u128::from(ns) << 32) / u128::from(ticks)) as u64)
}

struct ClockState {
    last: Sample,
    rate: Rate,
}

pub struct Timekeeper {
    clocks: Vec<ClockState>,
    khz: u32,
}

impl Timekeeper {
    /// Publishes the first lines (rates from the TSC frequency KVM reports).
    pub fn start(vvar: &Vvar, tsc_khz: u32) -> Timekeeper {
        let rate = rate_from_khz(tsc_khz);
        let clocks: Vec<ClockState> =
            VCLOCKS.iter().map(|c| ClockState { last: sample(*c), rate }).collect();
        vvar.publish(|now, _| {
            let mut p = Params { tsc_base: now, ..Default::default() };
            for (l, c) in p.lines.iter_mut().zip(&clocks) {
                let host = Line { base_ns: c.last.ns, mult: c.rate };
                *l = Line { base_ns: host.at(c.last.tsc, now), mult: c.rate };
            }
            p
        });
        Timekeeper { clocks, khz: tsc_khz }
    }

    /// One update; false if the TSC turned out unusable (the vDSO must then ask the Sentry).
    pub fn update(&mut self, vvar: &Vvar, period: Duration) -> bool {
        let fresh: Vec<Sample> = VCLOCKS.iter().map(|c| sample(*c)).collect();
        let nominal = rate_from_khz(self.khz).max(1);
        for (c, s) in self.clocks.iter_mut().zip(&fresh) {
            // A rate needs a long enough base to beat the frequency KVM reports, and must be
            // near it: NTP slews by at most 500 ppm, so anything further is a step of the clock
            // (its line is stepped below) and says nothing about its rate.
            if s.ns.saturating_sub(c.last.ns) >= 50_000_000
                && let Some(r) = rate_between(c.last, *s)
                && r.abs_diff(nominal) < nominal / 100
            {
                c.rate = r;
            }
            c.last = *s;
        }
        let period_ticks =
            ((u128::from(period.as_nanos() as u64) << 32) / u128::from(nominal)) as u64;
        let clocks = &self.clocks;
        let mut runaway = None;
        vvar.publish(|now, old| {
            let mut p = Params { tsc_base: now, ..Default::default() };
            for (i, c) in clocks.iter().enumerate() {
                let host = Line { base_ns: c.last.ns, mult: c.rate };
                let target = host.at(c.last.tsc, now);
                let current = old.lines[i].at(old.tsc_base, now);
                let stepped = target.abs_diff(current) > STEP_NS;
                if stepped && matches!(VCLOCKS[i], VClock::Monotonic | VClock::MonotonicRaw) {
                    runaway = Some((VCLOCKS[i], target as i64 - current as i64));
                }
                let base = if stepped { target } else { target.max(current) };
                // Aim at where the host clock will be at the next update.
                let aim = host.at(c.last.tsc, now.saturating_add(period_ticks));
                let mult = if period_ticks == 0 || aim <= base {
                    c.rate / 2
                } else {
                    ((u128::from(aim - base) << 32) / u128::from(period_ticks)) as u64
                };
                p.lines[i] =
                    Line { base_ns: base, mult: mult.clamp(c.rate / 2, c.rate.saturating_mul(2)) };
            }
            p
        });
        if let Some((clock, off_ns)) = runaway {
            tracing::warn!(
                ?clock,
                off_ns,
                "the TSC disagrees with the host's clock; clock reads go back to syscalls"
            );
            return false;
        }
        true
    }
}

/// Runs updates until the data page is gone (the sandbox ended) or its clock is turned off.
pub fn spawn(vvar: &Arc<Vvar>, mut tk: Timekeeper) -> std::io::Result<()> {
    let weak: Weak<Vvar> = Arc::downgrade(vvar);
    std::thread::Builder::new().name("vdso-time".into()).spawn(move || {
        let mut period = FIRST_PERIOD;
        loop {
            std::thread::sleep(period);
            let Some(v) = weak.upgrade() else { return };
            if v.clock_mode() != VCLOCK_TSC {
                return;
            }
            if !tk.update(&v, PERIOD) {
                v.set_clock_mode(0);
                return;
            }
            period = PERIOD;
        }
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::frames::{FrameAllocator, TranslationFlush};
    use crate::mm::phys::PhysMemory;
    use crate::mm::{PAGE_SIZE, PhysAddr, Physical};

    struct NoFlush;
    impl TranslationFlush for NoFlush {
        fn flush_all(&self) {}
    }

    fn vvar() -> Arc<Vvar> {
        let mem = PhysMemory::new(4 * PAGE_SIZE).unwrap();
        let frames = FrameAllocator::new(PhysAddr(0), mem.size());
        Vvar::new(Arc::new(Physical { mem, frames, flush: Arc::new(NoFlush), mirror: None }), 2)
            .unwrap()
    }

    /// The TSC frequency against the host's raw clock over 20 ms (a rough start, as KVM's
    /// figure would be; updates refine it).
    fn rough_khz() -> u32 {
        let a = sample(VClock::MonotonicRaw);
        std::thread::sleep(Duration::from_millis(20));
        let b = sample(VClock::MonotonicRaw);
        let rate = rate_between(a, b).unwrap();
        ((1_000_000u128 << 32) / u128::from(rate)) as u32
    }

    /// What the vDSO would read now, per clock.
    fn read(v: &Vvar) -> [u64; 4] {
        let p = v.params();
        let now = rdtsc();
        p.lines.map(|l| l.at(p.tsc_base, now))
    }

    #[test]
    fn lines_follow_the_host_clocks_and_never_go_back() {
        let v = vvar();
        let mut tk = Timekeeper::start(&v, rough_khz());
        let period = Duration::from_millis(50);
        let mut worst = 0u64;
        for _ in 0..6 {
            for _ in 0..10 {
                std::thread::sleep(Duration::from_millis(5));
                for (i, c) in VCLOCKS.iter().enumerate() {
                    let before = host_ns(host_clock_id(*c));
                    let got = read(&v)[i];
                    let after = host_ns(host_clock_id(*c));
                    let off = if got < before { before - got } else { got.saturating_sub(after) };
                    worst = worst.max(off);
                }
            }
            let old = read(&v);
            assert!(tk.update(&v, period));
            let new = read(&v);
            for i in 0..4 {
                assert!(
                    new[i] >= old[i],
                    "clock {:?} went back {} ns",
                    VCLOCKS[i],
                    old[i] - new[i]
                );
            }
        }
        // Microseconds at worst (the rough start); a wrong line would be off by milliseconds.
        assert!(worst < 200_000, "published clocks were {worst} ns off the host's");
    }

    #[test]
    fn a_published_update_is_seen_whole() {
        let v = vvar();
        let line = Line { base_ns: 7, mult: 1 << 32 };
        v.publish(|now, _| Params { tsc_base: now, lines: [line; 4] });
        let p = v.params();
        assert_eq!(p.lines, [line; 4]);
        // One tick, one nanosecond.
        assert_eq!(line.at(p.tsc_base, p.tsc_base + 1000), 1007);
        assert_eq!(line.at(p.tsc_base, p.tsc_base - 1000), 7, "a TSC read before the base");
    }
}
