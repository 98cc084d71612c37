//! SIGINT, SIGTERM and SIGUSR1: the first asks the run to stop at the next
//! safe point (the training loop checks between optimizer steps, the runner
//! between trials); a second exits at once (128 + the signal). SIGUSR1 is
//! what a Slurm batch script forwards before the time limit
//! (`--signal=B:USR1@120`); SIGTERM is what Slurm sends on scancel,
//! preemption and requeue. The handlers are `signal-hook`'s flag actions.

use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
use signal_hook::flag;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Set by the first signal (or `request`).
static STOP: AtomicBool = AtomicBool::new(false);
/// The first signal received (0: none).
static SIGNAL: AtomicUsize = AtomicUsize::new(0);

/// Installs the handlers (once, before the run starts; later calls do nothing).
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for sig in [SIGINT, SIGTERM, SIGUSR1] {
            // signal-hook runs a signal's actions in the order they were
            // registered: a signal after the first exits before it could
            // overwrite which signal came first.
            let r = flag::register_conditional_shutdown(sig, 128 + sig, &STOP)
                .and_then(|_| flag::register_usize(sig, &SIGNAL, sig as usize))
                .and_then(|_| flag::register(sig, &STOP));
            if let Err(e) = r {
                tracing::warn!("cannot handle {}: {e}; it ends the run at once", name(sig));
            }
        }
    });
}

/// The signal that asked the run to stop, if any.
pub fn requested() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => i32::try_from(s).ok(),
    }
}

/// `SIGINT`, `SIGTERM`, `SIGUSR1` or the number.
pub fn name(sig: i32) -> String {
    match sig {
        SIGINT => "SIGINT".into(),
        SIGTERM => "SIGTERM".into(),
        SIGUSR1 => "SIGUSR1".into(),
        n => format!("signal {n}"),
    }
}

/// Asks the run to stop as a first signal would (tests).
pub fn request(sig: i32) {
    if SIGNAL
        .compare_exchange(0, sig as usize, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok()
    {
        STOP.store(true, Ordering::SeqCst);
    }
}
