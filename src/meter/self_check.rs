//! A counter's self-check: over a window, the energy counter against the
//! integral of polled instant power, its independent second source.

use super::window::DomainEnergy;
use crate::util::units::{Joules, Seconds};
use serde::{Deserialize, Serialize};

/// A counter's agreement with its instant-power integral over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelfCheck {
    pub domain: String,
    pub seconds: Seconds,
    pub counter_joules: Joules,
    pub instant_power_joules: Joules,
    /// (counter − integral) / integral × 100.
    pub difference_pct: f64,
    /// Over `SELF_CHECK_WARN_PCT`.
    pub warning: bool,
}

/// Shortest window whose self-check is recorded (a 100-ms counter is too
/// coarse for shorter ones).
pub const SELF_CHECK_MIN_SECONDS: f64 = 3.0;
/// Disagreement that earns a warning.
pub const SELF_CHECK_WARN_PCT: f64 = 2.0;

impl SelfCheck {
    pub fn describe(&self) -> String {
        format!(
            "{}: the energy counter ({:.1} J) and the integral of instant power ({:.1} J) differ by {:+.1}% over {:.1} s (self-check warns above {SELF_CHECK_WARN_PCT}%)",
            self.domain,
            self.counter_joules.0,
            self.instant_power_joules.0,
            self.difference_pct,
            self.seconds.0
        )
    }
}

/// The self-check of one domain over a window of `seconds`, where it has a
/// cross-check and the window is long enough.
pub fn self_check(d: &DomainEnergy, seconds: Seconds) -> Option<SelfCheck> {
    let integral = d.cross_check_joules?;
    if seconds.0 < SELF_CHECK_MIN_SECONDS || integral.0 <= 0.0 {
        return None;
    }
    let pct = (d.joules.0 - integral.0) / integral.0 * 100.0;
    Some(SelfCheck {
        domain: d.domain.clone(),
        seconds,
        counter_joules: d.joules,
        instant_power_joules: integral,
        difference_pct: pct,
        warning: pct.abs() > SELF_CHECK_WARN_PCT,
    })
}
