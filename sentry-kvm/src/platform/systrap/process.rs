//! One stub process per address space: its region (shared with the Sentry), its control
//! thread's requests, its application threads' slots, and its end.

use std::collections::BTreeSet;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::code::stub_code;
use super::filter;
use super::layout::{self, msg, state};
use crate::platform::PlatformError;
use crate::sync::Mutex;

/// The signal a Sentry thread sends to interrupt application code on a stub thread.
pub const KICK_SIGNAL: i32 = libc::SIGUSR1;
/// Signals the stub's handler takes.
pub const HANDLED: [i32; 7] = [
    libc::SIGSYS,
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGFPE,
    libc::SIGILL,
    libc::SIGTRAP,
    KICK_SIGNAL,
];

/// How long a stub may take to answer before its liveness is checked.
const POLL: Duration = Duration::from_millis(500);
/// A stub that has not started by then is given up on.
const START_LIMIT: Duration = Duration::from_secs(10);

fn err(what: &str) -> PlatformError {
    PlatformError::Config(format!("{what}: {}", std::io::Error::last_os_error()))
}

/// The region's memory, mapped in the Sentry.
pub struct Region {
    fd: OwnedFd,
    local: *mut u8,
}

// SAFETY: a shared mapping accessed only through volatile/atomic reads and writes of the
// message words (the stub writes them concurrently).
unsafe impl Send for Region {}
// SAFETY: as above.
unsafe impl Sync for Region {}

impl Region {
    fn new() -> Result<Self, PlatformError> {
        // SAFETY: a valid name; the result is checked.
        let fd = unsafe { libc::memfd_create(c"ringfence-stub".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(err("memfd for a stub"));
        }
        // SAFETY: just created, owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sizing our own memfd.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), layout::SIZE as libc::off_t) } != 0 {
            return Err(err("sizing a stub's region"));
        }
        // SAFETY: a new shared mapping of the whole memfd; checked below.
        let local = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                layout::SIZE as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if local == libc::MAP_FAILED {
            return Err(err("mapping a stub's region"));
        }
        Ok(Self { fd, local: local.cast() })
    }

    /// Slot `k`'s message page.
    pub fn page(&self, k: u64) -> Page {
        // SAFETY: slots are inside the mapping (k < MAX_SLOTS is the callers' invariant).
        Page(unsafe { self.local.add(layout::slot(k) as usize) })
    }

    /// The Sentry's address of the stub's address `addr`, if `len` bytes there are in slot `k`.
    pub fn slot_bytes(&self, k: u64, addr: u64, len: u64) -> Option<*mut u8> {
        let start = layout::BASE + layout::slot(k);
        let end = addr.checked_add(len)?;
        if addr < start || end > start + layout::SLOT_SIZE {
            return None;
        }
        // SAFETY: inside slot k, inside the mapping.
        Some(unsafe { self.local.add((addr - layout::BASE) as usize) })
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`.
        unsafe { libc::munmap(self.local.cast(), layout::SIZE as usize) };
    }
}

/// A message page, seen from the Sentry.
#[derive(Clone, Copy)]
pub struct Page(*mut u8);

impl Page {
    pub fn get(self, offset: u64) -> u64 {
        // SAFETY: offsets are the layout's, inside the page; the stub may write concurrently.
        unsafe { std::ptr::read_volatile(self.0.add(offset as usize).cast::<u64>()) }
    }

    pub fn set(self, offset: u64, value: u64) {
        // SAFETY: as in `get`.
        unsafe { std::ptr::write_volatile(self.0.add(offset as usize).cast::<u64>(), value) }
    }

    fn word(self, offset: u64) -> &'static AtomicU32 {
        // SAFETY: 4-aligned offsets inside the page, which lives as long as its region; the
        // references never outlive a call that holds the region.
        unsafe { &*self.0.add(offset as usize).cast::<AtomicU32>() }
    }

    /// How many rounds the page's stub thread polls its state word before it sleeps (see
    /// `layout::SPIN_LIMIT`); the Sentry thread waiting on it does the same.
    pub fn set_polling(self, rounds: u32) {
        self.word(msg::SPIN_ROUNDS).store(rounds, Ordering::Relaxed);
    }

    pub fn state(self) -> &'static AtomicU32 {
        self.word(msg::STATE)
    }

    pub fn tid(self) -> &'static AtomicU32 {
        self.word(msg::TID)
    }

    fn bytes(self, offset: u64, data: &[u8]) {
        // SAFETY: callers keep `offset + data.len()` inside the page.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.0.add(offset as usize), data.len())
        }
    }

    /// Hands the page's thread `value`, waking it if it sleeps. (The store and the flag's load
    /// are sequentially consistent, as the stub sets its flag before it reads the state.)
    pub fn hand_over(self, value: u32) {
        self.state().store(value, Ordering::SeqCst);
        if self.word(msg::STUB_WAITING).load(Ordering::SeqCst) != 0 {
            futex_wake(self.state());
        }
    }
}

thread_local! {
    /// The stub thread (stub pid, slot) the calling Sentry thread holds stopped, if any.
    static HELD: std::cell::Cell<Option<(i32, u64)>> = const { std::cell::Cell::new(None) };
}

/// Records which stub thread the calling Sentry thread holds stopped (None while it runs).
pub fn hold(held: Option<(i32, u64)>) {
    HELD.set(held);
}

/// `place`'s value for a stub thread not placed yet.
pub const UNPLACED: i32 = -1;

/// How many CPUs the Sentry may use (its affinity, and its cgroup's CPU quota).
pub fn host_cpus() -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The CPUs the Sentry process may run on (as it started).
fn allowed_cpus() -> &'static [usize] {
    static ALLOWED: std::sync::OnceLock<Vec<usize>> = std::sync::OnceLock::new();
    ALLOWED.get_or_init(|| {
        // SAFETY: a zeroed cpu_set_t filled by the kernel with the process's CPUs.
        let set = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::sched_getaffinity(
                libc::getpid(),
                std::mem::size_of::<libc::cpu_set_t>(),
                &mut set,
            );
            set
        };
        (0..libc::CPU_SETSIZE as usize)
            // SAFETY: CPU_ISSET reads a bit of a valid set.
            .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
            .collect()
    })
}

/// Pins stub thread `tid` relative to the calling Sentry thread's CPU (`placed` holds the CPU
/// it was pinned to last, or [`UNPLACED`]). While the two hand the CPU back and forth, to the
/// same CPU: a wake-up there costs a fraction of one across CPUs (an IPI, which nested hosts
/// emulate). While both poll, to another: each then needs a CPU of its own, and the host's
/// scheduler would not move a thread that always wakes on its waker's CPU. The Sentry thread
/// stays free to move; the stub follows.
pub fn place(tid: i32, placed: &mut i32, polling: bool) {
    let Some(cpu) = crate::platform::kvm::tsc::host_cpu() else { return };
    let mut target = cpu as usize;
    if polling {
        let allowed = allowed_cpus();
        if let Some(&other) = allowed.iter().find(|&&c| c > target).or(allowed.first())
            && other != target
        {
            target = other;
        }
    }
    if target as i32 == *placed || target >= libc::CPU_SETSIZE as usize {
        return;
    }
    // SAFETY: a zeroed cpu_set_t with one CPU set, for a thread of our own stub.
    let ok = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(target, &mut set);
        libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    };
    if ok {
        *placed = target as i32;
    }
}

fn futex_wake(word: &AtomicU32) {
    // SAFETY: a futex word in shared memory; a non-private wake reaches the stub's waiters.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, 1) };
}

fn futex_wait(word: &AtomicU32, seen: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: as in `futex_wake`; returns on a change, a wake, a timeout or a signal.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAIT, seen, &ts) };
}

/// A stub process.
pub struct StubProcess {
    pub pid: i32,
    pub region: Region,
    /// Serialises the control thread's requests; holds where it is placed (see `place`).
    control: Mutex<i32>,
    /// The pages the stub maps. Held while a mapping is made from a page-table entry and while
    /// mappings are dropped, so that no stale entry is mapped after its invalidation.
    pub map_lock: Mutex<BTreeSet<u64>>,
    slots: Mutex<Vec<bool>>,
}

impl StubProcess {
    /// Starts a stub whose guest memory is descriptor `guest_fd` (`clone` is made by
    /// `spawner`, a long-lived thread: the stub dies with the thread that made it).
    pub fn start(
        guest_fd: i32,
        spawner: &super::spawner::Spawner,
    ) -> Result<StubProcess, PlatformError> {
        let region = Region::new()?;
        let code = stub_code();
        // SAFETY: the code page is the region's first page, and the code is shorter (a test
        // checks it).
        unsafe {
            std::ptr::copy_nonoverlapping(code.bytes.as_ptr(), region.local, code.bytes.len())
        };
        let p = region.page(0);
        p.set(msg::GUEST_FD, guest_fd as u64);
        // SAFETY: getauxval has no preconditions.
        let hwcap2 = unsafe { libc::getauxval(libc::AT_HWCAP2) };
        const HWCAP2_FSGSBASE: u64 = 1 << 1;
        p.set(msg::FSGSBASE, hwcap2 & HWCAP2_FSGSBASE);
        let mut mask = !0u64;
        for (i, s) in HANDLED.iter().enumerate() {
            mask &= !(1u64 << (s - 1));
            p.bytes(msg::SIGNALS + 4 * i as u64, &(*s as u32).to_le_bytes());
        }
        p.bytes(msg::SIGNALS + 4 * HANDLED.len() as u64, &0u32.to_le_bytes());
        p.set(msg::SIGMASK, mask);
        const SA_RESTORER: u64 = 0x0400_0000;
        p.set(msg::SIGACTION, layout::BASE + code.handler);
        p.set(msg::SIGACTION + 8, (libc::SA_SIGINFO | libc::SA_ONSTACK) as u64 | SA_RESTORER);
        p.set(msg::SIGACTION + 16, layout::BASE + code.restorer);
        p.set(msg::SIGACTION + 24, !0u64);
        let filter = filter::build(code.syscalls.clone(), guest_fd as u32);
        if filter.len() > msg::FILTER_MAX {
            return Err(PlatformError::Config("the stub's filter is too long".into()));
        }
        for (i, f) in filter.iter().enumerate() {
            let mut b = [0u8; 8];
            b[0..2].copy_from_slice(&f.code.to_le_bytes());
            b[2] = f.jt;
            b[3] = f.jf;
            b[4..8].copy_from_slice(&f.k.to_le_bytes());
            p.bytes(msg::FILTER + 8 * i as u64, &b);
        }
        p.set(msg::FPROG, filter.len() as u64);
        p.set(msg::FPROG + 8, layout::BASE + layout::slot(0) + msg::FILTER);
        let pid = spawner.spawn(region.fd.as_raw_fd(), p)?;
        let mut slots = vec![false; layout::MAX_SLOTS as usize];
        slots[0] = true;
        let stub = StubProcess {
            pid,
            region,
            control: Mutex::new(UNPLACED),
            map_lock: Mutex::new(BTreeSet::new()),
            slots: Mutex::new(slots),
        };
        let started = Instant::now();
        while p.state().load(Ordering::Acquire) != state::DONE {
            if started.elapsed() > START_LIMIT {
                return Err(PlatformError::Config("the stub process did not start".into()));
            }
            stub.wait_change(p.state(), 0)?;
        }
        Ok(stub)
    }

    /// Waits (bounded) for `word` to leave `seen`; an error if the stub died.
    pub fn wait_change(&self, word: &AtomicU32, seen: u32) -> Result<(), PlatformError> {
        if word.load(Ordering::Acquire) != seen {
            return Ok(());
        }
        futex_wait(word, seen, POLL);
        if word.load(Ordering::Acquire) == seen && !self.alive() {
            return Err(PlatformError::UnexpectedExit(format!(
                "stub process {} is gone",
                self.pid
            )));
        }
        Ok(())
    }

    /// Waits until the state word of `page` holds `want`, polling it first as long as the
    /// page says its stub thread does; an error if the stub died first.
    pub fn wait_state(&self, page: Page, want: u32) -> Result<(), PlatformError> {
        self.wait_state_polled(page, want).map(|_| ())
    }

    /// As `wait_state`; true if the wait ended while polling (false: it slept, or did not
    /// poll).
    pub fn wait_state_polled(&self, page: Page, want: u32) -> Result<bool, PlatformError> {
        let word = page.state();
        // The page is the application's to write too: bounded by what the Sentry ever sets.
        let rounds = page.word(msg::SPIN_ROUNDS).load(Ordering::Relaxed).min(layout::SPIN_LIMIT);
        for _ in 0..rounds {
            if word.load(Ordering::Acquire) == want {
                return Ok(true);
            }
            std::hint::spin_loop();
        }
        let waiting = page.word(msg::SENTRY_WAITING);
        loop {
            waiting.store(1, Ordering::SeqCst);
            let s = word.load(Ordering::SeqCst);
            if s == want {
                waiting.store(0, Ordering::Relaxed);
                return Ok(false);
            }
            let waited = self.wait_change(word, s);
            waiting.store(0, Ordering::Relaxed);
            waited?;
        }
    }

    /// Waits until `word` holds `want`; an error if the stub died first.
    pub fn wait_until(&self, word: &AtomicU32, want: u32) -> Result<(), PlatformError> {
        loop {
            let s = word.load(Ordering::Acquire);
            if s == want {
                return Ok(());
            }
            self.wait_change(word, s)?;
        }
    }

    fn alive(&self) -> bool {
        // SAFETY: waitid into a zeroed siginfo; WNOWAIT leaves a dead stub for Drop to reap.
        unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let r = libc::waitid(
                libc::P_PID,
                self.pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            );
            r == 0 && info.si_pid() == 0
        }
    }

    /// Has slot `k`'s thread (stopped, or the control thread) make a syscall.
    pub fn call_on(&self, k: u64, nr: i64, args: [u64; 6]) -> Result<i64, PlatformError> {
        let p = self.region.page(k);
        p.set(msg::CALL, nr as u64);
        for (i, a) in args.iter().enumerate() {
            p.set(msg::CALL + 8 + 8 * i as u64, *a);
        }
        p.hand_over(state::CALL);
        self.wait_state(p, state::DONE)?;
        Ok(p.get(msg::RESULT) as i64)
    }

    /// Has slot `k`'s (stopped) thread map guest memory: (address, length, protection, offset)
    /// each, at most `BATCH_MAX`. Returns the first failure's error, or 0.
    pub fn map_on(&self, k: u64, maps: &[(u64, u64, u64, u64)]) -> Result<i64, PlatformError> {
        let p = self.region.page(k);
        for (i, m) in maps.iter().take(layout::msg::BATCH_MAX).enumerate() {
            let at = msg::BATCH + 32 * i as u64;
            p.set(at, m.0);
            p.set(at + 8, m.1);
            p.set(at + 16, m.2);
            p.set(at + 24, m.3);
        }
        p.set(msg::CALL, maps.len().min(layout::msg::BATCH_MAX) as u64);
        p.hand_over(state::MAP);
        self.wait_state(p, state::DONE)?;
        Ok(p.get(msg::RESULT) as i64)
    }

    /// A syscall made by the control thread, which is moved to the caller's CPU first (see
    /// `place`).
    pub fn control_call(&self, nr: i64, args: [u64; 6]) -> Result<i64, PlatformError> {
        let mut placed = self.control.lock().unwrap_or_else(|e| e.into_inner());
        place(self.pid, &mut placed, false);
        self.call_on(0, nr, args)
    }

    /// Drops every mapping of `[start, end)` in the stub.
    pub fn unmap(&self, start: u64, end: u64) {
        let end = end.min(layout::BASE);
        if start >= end {
            return;
        }
        let mut mapped = self.map_lock.lock().unwrap_or_else(|e| e.into_inner());
        let gone: Vec<u64> = mapped.range(start..end).copied().collect();
        if gone.is_empty() {
            return;
        }
        for page in gone {
            mapped.remove(&page);
        }
        // The stub thread this Sentry thread holds stopped makes the call if it is one of
        // this stub's: it answers at once, and the host need not interrupt its CPU to flush
        // what it had mapped.
        let args = [start, end - start, 0, 0, 0, 0];
        let unmapped = match HELD.get() {
            Some((pid, slot)) if pid == self.pid => self.call_on(slot, libc::SYS_munmap, args),
            _ => self.control_call(libc::SYS_munmap, args),
        };
        match unmapped {
            Ok(0) => {}
            r => tracing::error!(pid = self.pid, "stub munmap {start:#x}..{end:#x}: {r:?}"),
        }
    }

    /// Starts an application thread, stopped at its first stop; returns its slot and tid.
    pub fn new_thread(&self) -> Result<(u64, i32), PlatformError> {
        let k = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            let k = slots.iter().position(|used| !used).ok_or_else(|| {
                PlatformError::Config(format!("{} stub threads in one process", layout::MAX_SLOTS))
            })?;
            slots[k] = true;
            k as u64
        };
        let p = self.region.page(k);
        p.state().store(0, Ordering::Release);
        p.tid().store(0, Ordering::Release);
        p.word(msg::SENTRY_WAITING).store(0, Ordering::Release);
        p.word(msg::STUB_WAITING).store(0, Ordering::Release);
        p.word(msg::SPIN_ROUNDS).store(0, Ordering::Release);
        let slot = layout::BASE + layout::slot(k);
        p.set(msg::ALTSTACK, slot + 0x1000);
        p.set(msg::ALTSTACK + 8, 0);
        p.set(msg::ALTSTACK + 16, layout::SLOT_SIZE - 0x1000);
        let args = [filter::THREAD_FLAGS, slot + layout::SLOT_SIZE, 0, slot + msg::TID, 0, 0];
        let tid = self.control_call(libc::SYS_clone, args)?;
        if tid <= 0 {
            self.free_slot(k);
            return Err(PlatformError::Config(format!("stub clone: errno {}", -tid)));
        }
        if let Err(e) = self.wait_state(p, state::TRAPPED) {
            self.free_slot(k);
            return Err(e);
        }
        Ok((k, tid as i32))
    }

    /// Ends slot `k`'s thread (stopped) and frees the slot.
    pub fn end_thread(&self, k: u64) {
        let p = self.region.page(k);
        p.set(msg::CALL, libc::SYS_exit as u64);
        p.set(msg::CALL + 8, 0);
        p.hand_over(state::CALL);
        // A stub that died has no thread left there either.
        let _ = self.wait_until(p.tid(), 0);
        self.free_slot(k);
    }

    fn free_slot(&self, k: u64) {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())[k as usize] = false;
    }
}

impl Drop for StubProcess {
    fn drop(&mut self) {
        // SAFETY: killing and reaping our own child.
        unsafe {
            libc::syscall(libc::SYS_tgkill, self.pid, self.pid, libc::SIGKILL);
            let mut status = 0;
            libc::waitpid(self.pid, &mut status, libc::__WALL);
        }
    }
}
