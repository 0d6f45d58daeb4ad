//! How long a process's start took, step by step, on both sides of the fork: the child stamps
//! the end of each of its steps into a page it shares with the agent (between fork and exec it
//! may only make system calls), and the agent reads the page once the exec has happened.

use std::time::Duration;

/// The child's steps, in the order they run; a step it skipped keeps the previous stamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum ChildStep {
    /// From the agent deciding to start it to the child's first instruction.
    Fork,
    Session,
    Cgroup,
    Proc,
    Root,
    Identity,
}

const NAMES: [&str; 6] = ["fork", "session", "cgroup", "proc", "root", "identity"];
const SLOTS: usize = NAMES.len();

/// A shared anonymous page of monotonic stamps (nanoseconds).
pub struct ChildSteps {
    page: *mut i64,
    began: i64,
}

// SAFETY: the page is plain shared memory written by the child only while the agent waits for
// its exec, and read by the agent afterwards.
unsafe impl Send for ChildSteps {}
// SAFETY: as above; `stamp` writes only through the raw pointer, one slot per step.
unsafe impl Sync for ChildSteps {}

fn now() -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes only the timespec we own; it is async-signal-safe.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

impl ChildSteps {
    /// Starts the clock: the fork step begins now.
    pub fn start() -> std::io::Result<ChildSteps> {
        // SAFETY: a fresh anonymous shared mapping; the result is checked.
        let page = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if page == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let began = now();
        let page = page.cast::<i64>();
        for i in 0..SLOTS {
            // SAFETY: the page holds far more than SLOTS stamps.
            unsafe { page.add(i).write_volatile(began) };
        }
        Ok(ChildSteps { page, began })
    }

    /// Ends `step` in the child, and every skipped one before it. Only a clock read and
    /// stores: safe between fork and exec.
    pub fn stamp(&self, step: ChildStep) {
        let t = now();
        for i in step as usize..SLOTS {
            // SAFETY: within the page mapped in `start`, which the child inherited.
            unsafe { self.page.add(i).write_volatile(t) };
        }
    }

    /// The steps' durations, the exec last (from the child's last step to now).
    pub fn finish(&self) -> Vec<(&'static str, Duration)> {
        let end = now();
        let mut last = self.began;
        let mut out = Vec::with_capacity(SLOTS + 1);
        for (i, name) in NAMES.iter().enumerate() {
            // SAFETY: within the page mapped in `start`.
            let t = unsafe { self.page.add(i).read_volatile() }.clamp(last, end);
            out.push((*name, Duration::from_nanos((t - last) as u64)));
            last = t;
        }
        out.push(("exec", Duration::from_nanos((end - last) as u64)));
        out
    }
}

impl Drop for ChildSteps {
    fn drop(&mut self) {
        // SAFETY: unmaps the page mapped in `start`, which nothing uses any more.
        unsafe { libc::munmap(self.page.cast(), 4096) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forked_child_stamps_what_the_parent_reads() {
        let steps = ChildSteps::start().unwrap();
        // SAFETY: the child only stamps and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            steps.stamp(ChildStep::Fork);
            std::thread::sleep(Duration::from_millis(20));
            steps.stamp(ChildStep::Cgroup);
            // SAFETY: ends the child without running the parent's destructors.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        let got = steps.finish();
        let names: Vec<_> = got.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["fork", "session", "cgroup", "proc", "root", "identity", "exec"]);
        // The skipped session step took nothing; the sleep lands in cgroup, and the steps
        // after it (never stamped) took nothing either.
        assert_eq!(got[1].1, Duration::ZERO, "{got:?}");
        assert!(got[2].1 >= Duration::from_millis(20), "{got:?}");
        assert!(got[3..6].iter().all(|(_, d)| d.is_zero()), "{got:?}");
    }
}
