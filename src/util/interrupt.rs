//! SIGINT, SIGTERM and SIGUSR1: the first asks the run to stop at the next
//! safe point (the training loop checks between optimizer steps, the runner
//! between trials); a second exits at once (128 + the signal). SIGUSR1 is
//! what a Slurm batch script forwards before the time limit
//! (`--signal=B:USR1@120`); SIGTERM is what Slurm sends on scancel,
//! preemption and requeue.

use std::sync::atomic::{AtomicI32, Ordering};

/// The first signal received (0: none).
static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    if SIGNAL
        .compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
    {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(128 + sig) };
    }
}

/// Installs the handlers (once, before the run starts).
pub fn install() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGUSR1] {
        // SAFETY: `on_signal` only touches an atomic and calls `_exit`, both
        // async-signal-safe; the sigaction struct is fully initialised.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// The signal that asked the run to stop, if any.
pub fn requested() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// `SIGINT`, `SIGTERM`, `SIGUSR1` or the number.
pub fn name(sig: i32) -> String {
    match sig {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGUSR1 => "SIGUSR1".into(),
        n => format!("signal {n}"),
    }
}

/// Asks the run to stop as a first signal would (tests).
pub fn request(sig: i32) {
    let _ = SIGNAL.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
}
