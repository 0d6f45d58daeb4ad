//! The kick: a real-time signal whose handler does nothing, sent to a vCPU thread only to bring
//! it out of KVM_RUN (to pause it, or to stop it once the machine has ended).

extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

/// The signal number of the kick.
pub fn signal() -> i32 {
    libc::SIGRTMIN() + 1
}

/// Installs the do-nothing handler (process-wide; idempotent).
pub fn install_handler() {
    // SAFETY: installing a handler that does nothing, for a signal only we send.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_kick as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigaction(signal(), &sa, std::ptr::null_mut());
    }
}

/// Kicks `thread` (one of this process's vCPU threads) out of the guest.
pub fn kick(thread: libc::pthread_t) {
    // SAFETY: signalling one of this process's threads with the no-op kick signal.
    unsafe { libc::pthread_kill(thread, signal()) };
}
