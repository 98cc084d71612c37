//! Whether a measurement can be trusted: a verdict per window and per
//! trial (valid, flagged with reasons, or invalid with reasons) from
//! explicit rules, each with its source and threshold.
//!
//! Report, compare and reproduce respect the verdict: invalid trials never
//! count, flagged trials count but are shown and, where the flag says the
//! machine was disturbed, turn a comparison into "cannot judge".
//!
//! The rules themselves (`judge`) are documented one by one below.

use serde::{Deserialize, Serialize};

/// How far a measurement can be trusted.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every rule holds.
    #[default]
    Valid,
    /// Usable, with a caveat a reader must see (e.g. other processes ran).
    Flagged,
    /// Not a measurement of the trial: never counted.
    Invalid,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::Flagged => "flagged",
            Verdict::Invalid => "invalid",
        }
    }
}

crate::named_enum! {
    /// The rule a finding comes from.
    pub enum Rule: "validity rule" {
        /// Other processes used the machine's CPUs during the window.
        Interference = "interference",
        /// Other processes ran on a measured GPU during the window.
        GpuProcesses = "gpu-processes",
        /// The window is too short, or has too few samples, for the meter to resolve.
        Resolution = "resolution",
        /// Average power outside what the device can draw, or energy <= 0.
        Power = "power",
        /// A counter disagrees with the integral of polled instant power.
        SelfCheck = "self-check",
        /// The GPU slowed its clocks (thermal, power brake, hardware slowdown).
        Throttle = "throttle",
        /// An inference figure that includes the ramp-up of its first batches.
        SteadyState = "steady-state",
    }
}

/// One rule's finding about one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub rule: Rule,
    pub verdict: Verdict,
    /// What was seen against which threshold, e.g. "other processes used
    /// 48% of the machine's CPU time (limit 10%)".
    pub detail: String,
    /// The window the finding is about (set when findings are combined).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
}

/// The verdict of a window or a trial, with every finding behind it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Validity {
    pub verdict: Verdict,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
}

impl Validity {
    /// The verdict of these findings: the worst of them (valid without any).
    pub fn of(findings: Vec<Finding>) -> Validity {
        Validity {
            verdict: findings.iter().map(|f| f.verdict).max().unwrap_or_default(),
            findings,
        }
    }

    /// Several windows' verdicts as one (a trial's): the worst verdict, and
    /// every finding with the window it came from.
    pub fn combine<'a>(windows: impl IntoIterator<Item = (&'a str, &'a Validity)>) -> Validity {
        let mut findings = Vec::new();
        for (name, v) in windows {
            for f in &v.findings {
                let mut f = f.clone();
                f.window.get_or_insert_with(|| name.to_string());
                findings.push(f);
            }
        }
        Validity::of(findings)
    }

    pub fn is_invalid(&self) -> bool {
        self.verdict == Verdict::Invalid
    }

    /// Whether a finding says other work disturbed the measurement.
    pub fn disturbed(&self) -> bool {
        self.findings
            .iter()
            .any(|f| matches!(f.rule, Rule::Interference | Rule::GpuProcesses))
    }

    /// `flagged: interference (train/epoch-1), power (test)`, for tables.
    pub fn summary(&self) -> String {
        if self.findings.is_empty() {
            return self.verdict.label().to_string();
        }
        let mut rules: Vec<&str> = Vec::new();
        for f in &self.findings {
            if !rules.contains(&f.rule.name()) {
                rules.push(f.rule.name());
            }
        }
        format!("{}: {}", self.verdict.label(), rules.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(rule: Rule, verdict: Verdict) -> Finding {
        Finding {
            rule,
            verdict,
            detail: String::new(),
            window: None,
        }
    }

    #[test]
    fn the_worst_finding_decides_and_windows_are_named() {
        assert_eq!(Validity::of(vec![]).verdict, Verdict::Valid);
        let a = Validity::of(vec![f(Rule::Interference, Verdict::Flagged)]);
        let b = Validity::of(vec![f(Rule::Power, Verdict::Invalid)]);
        let t = Validity::combine([("train/epoch-1", &a), ("test", &b)]);
        assert_eq!(t.verdict, Verdict::Invalid);
        assert_eq!(t.findings[0].window.as_deref(), Some("train/epoch-1"));
        assert!(t.disturbed());
        assert_eq!(t.summary(), "invalid: interference, power");
    }
}
