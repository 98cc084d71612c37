//! Keep freed heap memory in the process instead of handing it back to the
//! kernel after every training step.
//!
//! candle allocates a fresh buffer for every tensor op, and a training step
//! frees hundreds of them, many between 128 KiB and tens of MiB. glibc's
//! defaults serve such buffers with `mmap` (or trim the heap top with `brk`)
//! and return them on `free`, so the next step faults every page in again and
//! the kernel zeroes it: profiled on the 2-core machine, 39% of an MLP/CNN
//! step went to page faults. Raising the mmap threshold and switching off
//! trimming lets glibc reuse those pages (MLP step 14 → 8 ms, CNN 177 → 120
//! ms, measured with `examples/perf_summary`). Resident memory then stays at
//! its high-water mark, which a benchmark process reaches in its first step
//! anyway.
//!
//! The setting is process-wide, so binaries (the CLI, benches, examples) call
//! [`keep_freed_memory`] once at start-up; the run manifest records the outcome.

use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

static APPLIED: OnceLock<AllocatorTuning> = OnceLock::new();

/// Largest request still served from the heap. glibc refuses values above
/// its per-heap limit, so smaller fallbacks are tried.
const MMAP_THRESHOLDS: [i32; 3] = [1 << 30, 1 << 26, 1 << 25];

/// What [`keep_freed_memory`] managed to set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocatorTuning {
    /// `glibc` or `system` (an allocator this module does not tune).
    pub allocator: String,
    /// Requests up to this size reuse heap memory; `None` when untouched.
    pub mmap_threshold_bytes: Option<u64>,
    /// Whether freed memory at the heap top is kept rather than trimmed.
    pub trim_disabled: bool,
}

impl AllocatorTuning {
    pub fn describe(&self) -> String {
        match self.mmap_threshold_bytes {
            Some(t) => format!(
                "{}: freed memory kept (mmap threshold {} MiB, trimming {})",
                self.allocator,
                t >> 20,
                if self.trim_disabled { "off" } else { "on" }
            ),
            None => format!("{}: defaults", self.allocator),
        }
    }
}

/// Tunes the process allocator (glibc on Linux) to keep freed memory; a no-op
/// elsewhere. Only the first call acts; call it before spawning threads.
pub fn keep_freed_memory() -> AllocatorTuning {
    APPLIED
        .get_or_init(|| {
            let tuning = imp::tune();
            tracing::debug!("allocator: {}", tuning.describe());
            tuning
        })
        .clone()
}

/// The tuning in force: what [`keep_freed_memory`] set, or the defaults when
/// it was never called (a library user's own binary).
pub fn current() -> AllocatorTuning {
    APPLIED.get().cloned().unwrap_or_else(untuned)
}

fn untuned() -> AllocatorTuning {
    AllocatorTuning {
        allocator: imp::ALLOCATOR.into(),
        mmap_threshold_bytes: None,
        trim_disabled: false,
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod imp {
    use super::{AllocatorTuning, MMAP_THRESHOLDS};

    pub const ALLOCATOR: &str = "glibc";

    pub fn tune() -> AllocatorTuning {
        // SAFETY: mallopt only changes glibc's allocation parameters; it takes
        // the arena lock itself and is safe to call at any time.
        let threshold = MMAP_THRESHOLDS
            .iter()
            .copied()
            .find(|&t| unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, t) } == 1);
        let trim_disabled = unsafe { libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX) } == 1;
        AllocatorTuning {
            allocator: ALLOCATOR.into(),
            mmap_threshold_bytes: threshold.map(|t| t as u64),
            trim_disabled,
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod imp {
    use super::AllocatorTuning;

    pub const ALLOCATOR: &str = "system";

    pub fn tune() -> AllocatorTuning {
        super::untuned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn glibc_accepts_a_threshold_and_trim_setting() {
        let t = keep_freed_memory();
        assert_eq!(t.allocator, "glibc");
        let th = t
            .mmap_threshold_bytes
            .expect("glibc took no mmap threshold");
        assert!(th >= 1 << 25, "threshold {th}");
        assert!(t.trim_disabled);
        assert!(
            t.describe().contains("freed memory kept"),
            "{}",
            t.describe()
        );
        // A large buffer freed and allocated again still works.
        for _ in 0..3 {
            let v = vec![1u8; 40 << 20];
            assert_eq!(v[(40 << 20) - 1], 1);
        }
    }
}
