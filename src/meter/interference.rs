//! Other work on the machine during a window: CPU time the whole machine
//! spent busy (`/proc/stat`) minus this process's own, as a share of the
//! machine's CPU capacity over the window.

use crate::util::units::Seconds;
use serde::{Deserialize, Serialize};

/// What other processes did during one window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interference {
    /// CPU time other processes (and the hypervisor's steal) used.
    pub other_cpu: Seconds,
    /// `other_cpu` over the machine's capacity (online CPUs × wall time).
    pub other_share: f64,
    /// This process's own CPU time in the window.
    pub own_cpu: Seconds,
    /// CPUs online.
    pub cpus: u32,
}
