//! POSIX per-process timers (timer_create and friends). Each timer that has ever been armed
//! has a host thread that sleeps on the timer's condition variable until its deadline, then
//! queues the timer's signal; an expiry that finds the previous signal still queued counts
//! as an overrun instead, as on Linux. A process's timers go with exec and exit.

use crate::sync::{Condvar, Mutex, MutexGuard};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::abi::Errno;
use crate::abi::signal::{SI_TIMER, SigInfo, Signal};
use crate::kernel::signal::send::{Origin, send_to_group, send_to_task};
use crate::kernel::task::Task;
use crate::kernel::thread_group::ThreadGroup;

/// Timers a process may hold: each armed one costs a host thread.
pub const MAX_TIMERS: usize = 512;

/// How often a CPU-time timer looks at the clock (CPU time cannot be slept on).
const CPU_POLL: Duration = Duration::from_millis(5);
/// The longest a worker sleeps at once.
const LONGEST_WAIT: Duration = Duration::from_secs(3600);

/// The clock a timer measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerClock {
    Realtime,
    Monotonic,
    /// CPU time of the whole process.
    ProcessCpu,
    /// CPU time of the creating thread.
    ThreadCpu,
}

impl TimerClock {
    /// The clock of a Linux clock id (None: not one a timer may use).
    pub fn from_id(id: i32) -> Option<TimerClock> {
        Some(match id {
            0 => TimerClock::Realtime,
            1 | 7 => TimerClock::Monotonic, // CLOCK_MONOTONIC, CLOCK_BOOTTIME
            2 => TimerClock::ProcessCpu,
            3 => TimerClock::ThreadCpu,
            _ => return None,
        })
    }

    fn is_cpu(self) -> bool {
        matches!(self, TimerClock::ProcessCpu | TimerClock::ThreadCpu)
    }
}

/// What an expiry does (struct sigevent's notification).
#[derive(Clone, Debug)]
pub enum Notify {
    /// SIGEV_NONE: nothing; the timer can only be read.
    Nothing,
    /// SIGEV_SIGNAL: a signal to the process.
    Process { signo: Signal, value: u64 },
    /// SIGEV_THREAD_ID: a signal to one thread of the process.
    Thread { task: Weak<Task>, signo: Signal, value: u64 },
}

/// A timer's setting as timer_settime/timer_gettime see it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimerSpec {
    /// Until the next expiry (zero: disarmed).
    pub value: Duration,
    pub interval: Duration,
}

struct TimerState {
    /// The next expiry, as a reading of the timer's clock.
    deadline: Option<Duration>,
    interval: Duration,
    /// Bumped by every change, so the worker notices that its deadline is stale.
    generation: u64,
    deleted: bool,
    worker: bool,
}

pub struct Timer {
    id: i32,
    clock: TimerClock,
    notify: Notify,
    tg: Weak<ThreadGroup>,
    /// The creating thread (the clock of a ThreadCpu timer).
    creator: Weak<Task>,
    state: Mutex<TimerState>,
    changed: Condvar,
    /// Held from deciding an expiry to queueing its signal: the worker and a catch-up at
    /// signal unblock must not both queue one.
    firing: Mutex<()>,
    /// Expiries since the queued signal was generated.
    overrun: AtomicI32,
    /// The overrun count of the last signal delivered (timer_getoverrun).
    overrun_last: AtomicI32,
}

impl Timer {
    #[track_caller]
    fn lock(&self) -> MutexGuard<'_, TimerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current reading of this timer's clock.
    fn now(&self) -> Option<Duration> {
        match self.clock {
            TimerClock::Realtime => {
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()
            }
            TimerClock::Monotonic => Some(monotonic()),
            TimerClock::ProcessCpu => {
                let tg = self.tg.upgrade()?;
                let done = tg.lock().usage.user_us;
                let live: u64 = tg.threads().iter().map(|t| t.cpu_us()).sum();
                Some(Duration::from_micros(done + live))
            }
            TimerClock::ThreadCpu => Some(Duration::from_micros(self.creator.upgrade()?.cpu_us())),
        }
    }

    /// The current setting.
    pub fn get(&self) -> TimerSpec {
        let now = self.now().unwrap_or_default();
        let st = self.lock();
        spec_of(&st, now)
    }

    /// Arms (a zero value disarms) the timer; `absolute` values are readings of its clock.
    /// Returns the previous setting.
    pub fn set(self: &Arc<Self>, new: TimerSpec, absolute: bool) -> TimerSpec {
        let now = self.now().unwrap_or_default();
        let (start, old) = {
            let mut st = self.lock();
            let old = spec_of(&st, now);
            st.generation += 1;
            st.interval = new.interval;
            st.deadline = if new.value.is_zero() {
                None
            } else if absolute {
                Some(new.value)
            } else {
                Some(now.saturating_add(new.value))
            };
            self.overrun.store(0, Ordering::Relaxed);
            let start = st.deadline.is_some() && !st.worker;
            st.worker |= start;
            drop(st);
            self.changed.notify_all();
            (start, old)
        };
        if start {
            let timer = Arc::downgrade(self);
            let spawned = std::thread::Builder::new()
                .name("posix-timer".into())
                .stack_size(64 << 10)
                .spawn(move || run(timer));
            if let Err(e) = spawned {
                tracing::error!("cannot start a POSIX timer thread: {e}");
                self.lock().worker = false;
            }
        }
        old
    }

    pub fn overrun_last(&self) -> i32 {
        self.overrun_last.load(Ordering::Relaxed)
    }

    fn delete(&self) {
        self.lock().deleted = true;
        self.changed.notify_all();
    }

    /// Fires the timer if its deadline has passed at `now` and re-arms a periodic one.
    /// The worker names the generation it waited for (a changed timer is not fired for it);
    /// a catch-up names none and moves the worker on to the new deadline.
    fn expire(&self, now: Duration, waited: Option<u64>) {
        let _firing = self.firing.lock().unwrap_or_else(|e| e.into_inner());
        let expiries = {
            let mut st = self.lock();
            let Some(deadline) = st.deadline else { return };
            if st.deleted || waited.is_some_and(|g| g != st.generation) || now < deadline {
                return;
            }
            let n = if st.interval.is_zero() {
                st.deadline = None;
                1
            } else {
                let late = (now - deadline).as_nanos() / st.interval.as_nanos();
                let n = u64::try_from(late).unwrap_or(u64::MAX).saturating_add(1);
                let step = st.interval.saturating_mul(u32::try_from(n).unwrap_or(u32::MAX));
                st.deadline = Some(deadline.saturating_add(step));
                n
            };
            if waited.is_none() {
                st.generation += 1;
            }
            n
        };
        if waited.is_none() {
            self.changed.notify_all();
        }
        self.fire(expiries);
    }

    /// Queues the timer's signal for `expiries` expiries, or counts them as overruns while
    /// the one queued before waits for delivery.
    fn fire(&self, expiries: u64) {
        let extra = i32::try_from(expiries.saturating_sub(1)).unwrap_or(i32::MAX);
        let (signo, value) = match &self.notify {
            Notify::Nothing => return,
            Notify::Process { signo, value } | Notify::Thread { signo, value, .. } => {
                (*signo, *value)
            }
        };
        let Some(tg) = self.tg.upgrade() else { return };
        let info =
            SigInfo { signo, code: SI_TIMER, timer_id: self.id, value, ..Default::default() };
        // Callers hold `firing`, so the check cannot go stale before the signal is sent.
        let queued = match &self.notify {
            Notify::Thread { task, .. } => {
                let Some(task) = task.upgrade() else { return };
                let queued = task.sig().pending.has_timer(self.id);
                if !queued {
                    self.overrun.store(extra, Ordering::Relaxed);
                    send_to_task(&task, info, Origin::Sandbox);
                }
                queued
            }
            _ => {
                let queued = tg.lock().shared_pending.has_timer(self.id);
                if !queued {
                    self.overrun.store(extra, Ordering::Relaxed);
                    send_to_group(&tg, info, Origin::Sandbox);
                }
                queued
            }
        };
        if queued {
            let add = extra.saturating_add(1);
            let _ = self.overrun.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |o| {
                Some(o.saturating_add(add))
            });
        }
    }
}

fn monotonic() -> Duration {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}

fn spec_of(st: &TimerState, now: Duration) -> TimerSpec {
    match st.deadline {
        // An expired timer waiting for its worker still shows as armed (Linux shows 1 ns).
        Some(d) => TimerSpec {
            value: d.saturating_sub(now).max(Duration::from_nanos(1)),
            interval: st.interval,
        },
        None => TimerSpec { value: Duration::ZERO, interval: st.interval },
    }
}

/// A timer's worker: waits for the deadline, fires, and re-arms periodic timers, until the
/// timer is deleted or its process is gone.
fn run(timer: Weak<Timer>) {
    loop {
        let Some(t) = timer.upgrade() else { return };
        let (deadline, generation) = {
            let st = t.lock();
            if st.deleted {
                return;
            }
            match st.deadline {
                Some(d) => (d, st.generation),
                None => {
                    // Disarmed: sleep until changed (bounded, to notice a dropped timer).
                    drop(t.changed.wait_timeout(st, Duration::from_secs(1)));
                    continue;
                }
            }
        };
        let Some(now) = t.now() else { return };
        if now < deadline {
            // Bounded, so that a far deadline (the guest may ask for centuries) stays a
            // valid wait.
            let cap = if t.clock.is_cpu() { CPU_POLL } else { LONGEST_WAIT };
            let wait = (deadline - now).min(cap);
            let st = t.lock();
            if st.generation == generation && !st.deleted {
                drop(t.changed.wait_timeout(st, wait));
            }
            continue;
        }
        t.expire(now, Some(generation));
    }
}

#[derive(Default)]
struct Table {
    timers: BTreeMap<i32, Arc<Timer>>,
    /// Where the search for a free id starts: Linux hands ids out in turn, not reusing a
    /// deleted one at once.
    next_id: i32,
}

/// A process's timers by id.
#[derive(Default)]
pub struct PosixTimers {
    table: Mutex<Table>,
}

impl PosixTimers {
    #[track_caller]
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates a disarmed timer; returns its id.
    pub fn create(
        &self,
        tg: &Arc<ThreadGroup>,
        creator: &Arc<Task>,
        clock: TimerClock,
        notify: impl FnOnce(i32) -> Notify,
    ) -> Result<i32, Errno> {
        let mut table = self.lock();
        if table.timers.len() >= MAX_TIMERS {
            return Err(Errno::EAGAIN);
        }
        let mut id = table.next_id;
        while table.timers.contains_key(&id) {
            id = id.checked_add(1).unwrap_or(0);
        }
        table.next_id = id.checked_add(1).unwrap_or(0);
        let timer = Timer {
            id,
            clock,
            notify: notify(id),
            tg: Arc::downgrade(tg),
            creator: Arc::downgrade(creator),
            state: Mutex::new(TimerState {
                deadline: None,
                interval: Duration::ZERO,
                generation: 0,
                deleted: false,
                worker: false,
            }),
            changed: Condvar::new(),
            firing: Mutex::new(()),
            overrun: AtomicI32::new(0),
            overrun_last: AtomicI32::new(0),
        };
        table.timers.insert(id, Arc::new(timer));
        Ok(id)
    }

    pub fn get(&self, id: i32) -> Result<Arc<Timer>, Errno> {
        self.lock().timers.get(&id).cloned().ok_or(Errno::EINVAL)
    }

    pub fn delete(&self, id: i32) -> Result<(), Errno> {
        let t = self.lock().timers.remove(&id).ok_or(Errno::EINVAL)?;
        t.delete();
        Ok(())
    }

    /// Deletes every timer (exec, exit).
    pub fn clear(&self) {
        let all = std::mem::take(&mut self.lock().timers);
        for t in all.values() {
            t.delete();
        }
    }

    /// A thread unblocked signals: timers already due fire now, as they would have on
    /// Linux at their deadline, even if their workers have not run yet (a starved worker
    /// would otherwise let a disarm that follows drop expiries already due).
    pub fn catch_up(&self) {
        let armed: Vec<Arc<Timer>> =
            self.lock().timers.values().filter(|t| !t.clock.is_cpu()).cloned().collect();
        for t in armed {
            if let Some(now) = t.now() {
                t.expire(now, None);
            }
        }
    }

    /// A timer's signal is being delivered: it carries the overruns counted meanwhile, which
    /// timer_getoverrun reports from now on.
    pub fn delivering(&self, info: &mut SigInfo) {
        if info.code != SI_TIMER {
            return;
        }
        let Some(t) = self.lock().timers.get(&info.timer_id).cloned() else { return };
        let n = t.overrun.swap(0, Ordering::Relaxed);
        t.overrun_last.store(n, Ordering::Relaxed);
        info.overrun = n;
    }
}
