//! Interval timers (ITIMER_REAL, alarm): a host thread sleeps until the deadline and sends
//! SIGALRM unless the timer was changed in the meantime.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::abi::signal::{SI_KERNEL, SIGALRM, SigInfo};
use crate::kernel::signal::send::{Origin, send_to_group};
use crate::kernel::thread_group::ThreadGroup;

/// Arms (or with `value` zero, disarms) the real-time interval timer of `tg`. Returns the
/// previous remaining time and interval.
pub fn set_itimer_real(
    tg: &Arc<ThreadGroup>,
    value: Duration,
    interval: Duration,
) -> (Duration, Duration) {
    let (old, generation) = {
        let mut st = tg.lock();
        let now = Instant::now();
        let old =
            st.itimer_real.map(|(d, i)| (d.saturating_duration_since(now), i)).unwrap_or_default();
        st.itimer_generation += 1;
        st.itimer_real = (!value.is_zero()).then(|| (now + value, interval));
        (old, st.itimer_generation)
    };
    if !value.is_zero() {
        let weak = Arc::downgrade(tg);
        let spawned = std::thread::Builder::new()
            .name("itimer".into())
            .stack_size(64 << 10)
            .spawn(move || run_timer(weak, generation));
        if let Err(e) = spawned {
            tracing::error!("cannot start an interval timer thread: {e}");
        }
    }
    old
}

pub fn get_itimer_real(tg: &ThreadGroup) -> (Duration, Duration) {
    let now = Instant::now();
    tg.lock().itimer_real.map(|(d, i)| (d.saturating_duration_since(now), i)).unwrap_or_default()
}

fn run_timer(tg: std::sync::Weak<ThreadGroup>, generation: u64) {
    loop {
        let Some(t) = tg.upgrade() else { return };
        let deadline = {
            let st = t.lock();
            if st.itimer_generation != generation || st.zombie.is_some() {
                return;
            }
            match st.itimer_real {
                Some((d, _)) => d,
                None => return,
            }
        };
        drop(t);
        let now = Instant::now();
        if deadline > now {
            std::thread::sleep((deadline - now).min(Duration::from_millis(250)));
            continue;
        }
        let Some(t) = tg.upgrade() else { return };
        let fire = {
            let mut st = t.lock();
            if st.itimer_generation != generation {
                return;
            }
            match st.itimer_real {
                Some((d, interval)) if !interval.is_zero() => {
                    st.itimer_real = Some((d + interval, interval));
                    true
                }
                Some(_) => {
                    st.itimer_real = None;
                    true
                }
                None => false,
            }
        };
        if fire {
            send_to_group(
                &t,
                SigInfo { signo: SIGALRM, code: SI_KERNEL, ..Default::default() },
                Origin::Sandbox,
            );
        }
        if t.lock().itimer_real.is_none() {
            return;
        }
    }
}
