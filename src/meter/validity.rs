//! Whether a measurement can be trusted: a verdict per window and per
//! trial (valid, flagged with reasons, or invalid with reasons) from
//! explicit rules, each with its source and threshold.
//!
//! Report, compare and reproduce respect the verdict: invalid trials never
//! count, flagged trials count but are shown and, where the flag says the
//! machine was disturbed, turn a comparison into "cannot judge".
//!
//! `judge::judge` (`judge.rs`) applies the rules below to every window when it closes
//! (`Measurer::end`); a trial's verdict is `Validity::combine` over its
//! windows (idle, every epoch's training and validation, test, inference,
//! and the quantized and sparse models' test and inference windows), the
//! worst of them decides. *Invalid* means the figure is not a measurement
//! of the window; *flagged* means it is one, with a caveat a reader must
//! see.
//!
//! **interference** (flagged). Other processes' CPU time in the window
//! (`interference.rs`: `/proc/stat` busy time minus this process's
//! `CLOCK_PROCESS_CPUTIME_ID`) above `interference_limit` (default 10%,
//! `[meter] interference_limit`, `--interference-limit`) of the machine's
//! capacity (online CPUs × wall seconds), beyond the counters' resolution of
//! one tick per CPU at each edge. Source: hyperfine warns when "the system
//! was not quiet" (statistical outliers); issue #32 measured identical code
//! reading as a 49% regression under load ≈ 3 on 2 cores. A disturbed idle
//! window is named `idle` in the trial's findings: its baseline is suspect.
//!
//! **gpu-processes** (flagged). A PID other than this process's held a
//! compute context on a measured GPU during the window (NVML
//! `nvmlDeviceGetComputeRunningProcesses`, read every 25 polls): its work is
//! in the GPU's energy. Source: ML.ENERGY and Zeus measure on GPUs no one
//! else uses. Where NVML lists PIDs of another PID namespace (a container),
//! this process's PID is absent; on the GPU the run computes on, one listed
//! process is then taken as this run's and only more than one is flagged.
//!
//! **resolution**. Counter domains with an update period p
//! (`MeterInfo::update_period`, measured at start):
//! - a window shorter than p: the counter may not have ticked. With instant
//!   power at both edges the figure is mean instant power × duration
//!   (provenance `integrated`): flagged; without it the counter difference
//!   is 0 or a whole period, not a measurement: invalid. (MLPerf Power
//!   refuses runs too short for the meter and extends them instead.)
//! - shorter than `COARSE_PERIODS` (10) × p: each edge may be one period
//!   stale, up to p / seconds of the energy: flagged.
//!
//! Polled domains (provenance `integrated`): fewer than `MIN_SAMPLES` (10)
//! power samples in the window, or a gap of more than `MAX_SAMPLE_GAP_S`
//! (1 s) between samples (the poller starved), flagged. Sources: MLPerf
//! Power wants at least one sample per second, evenly spread; ML.ENERGY's
//! `validate_results.py` wants 75% of the 1-s samples.
//!
//! **power**. For measured domains (counter, integrated; a model's figure is
//! what the model says):
//! - energy below zero (a counter that went backwards): invalid;
//! - no energy at all over a window longer than the resolution (two update
//!   periods, or two samples): invalid (ML.ENERGY: energy > 0);
//! - a GPU's average power over a window of at least `POWER_CHECK_MIN_S`
//!   (1 s, the averaging of NVML's power cap) above its enforced power
//!   limit (`GpuState::power_limit_w`, the highest seen in the window) by
//!   more than `POWER_MARGIN` (10%): invalid (ML.ENERGY: average power at
//!   most the TDP). CPU packages have no limit the meters read, so are not
//!   judged;
//! - net energy below −`NET_FLOOR` (10%) of the window's idle energy: the
//!   window drew less than the idle baseline, so the baseline was disturbed
//!   (measured while other work ran): flagged.
//!
//! **self-check** (flagged). A counter and the integral of its polled
//! instant power differ by more than `SELF_CHECK_WARN_PCT` (2%) over a
//! window of at least 3 s (`window::self_check`).
//!
//! **throttle** (flagged). A measured GPU reported a clocks event
//! (throttle) reason during the window other than `gpu-idle`,
//! `applications-clocks` and `display-clocks` (settings, not slowdowns):
//! `sw-power-cap`, thermal and hardware slowdowns, power brake, sync boost.
//! The figure then depends on the board's cooling and power delivery as
//! much as on the work. A `sw-power-cap` while the trial itself set a
//! power limit (`gpu_power_limit_w`) is the setting doing its job: recorded
//! as a valid finding that says so, not flagged.
//!
//! **steady-state** (flagged). An inference window opened without a
//! discarded warm-up batch (`train/eval.rs` runs `INFERENCE_WARMUP_BATCHES`
//! before opening it), so its J/1000 would include the ramp-up of the
//! first batch (allocation, caches, clocks). Source: ML.ENERGY's
//! PITFALLS.md (measure steady state only).

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

    /// The verdict of a reading summed from parts (an epoch's segments
    /// between checkpoints, a teacher's per-step windows) named `name`: one
    /// finding per rule and verdict, the first part's detail with how many
    /// more parts had one like it, and the part's window where its name is
    /// not `name`. None when no part was judged.
    pub fn merge<'a>(
        name: &str,
        parts: impl IntoIterator<Item = &'a (String, Validity)>,
    ) -> Option<Validity> {
        let mut out: Vec<(Finding, usize)> = Vec::new();
        let mut any = false;
        for (window, v) in parts {
            any = true;
            for f in &v.findings {
                match out
                    .iter_mut()
                    .find(|(o, _)| o.rule == f.rule && o.verdict == f.verdict)
                {
                    Some((_, n)) => *n += 1,
                    None => {
                        let mut f = f.clone();
                        if window != name {
                            f.window.get_or_insert_with(|| window.clone());
                        }
                        out.push((f, 1));
                    }
                }
            }
        }
        any.then(|| {
            Validity::of(
                out.into_iter()
                    .map(|(mut f, n)| {
                        if n > 1 {
                            f.detail = format!("{} (and {} more part(s) like it)", f.detail, n - 1);
                        }
                        f
                    })
                    .collect(),
            )
        })
    }

    /// Adds a finding (the verdict becomes the worst so far).
    pub fn add(&mut self, f: Finding) {
        self.verdict = self.verdict.max(f.verdict);
        self.findings.push(f);
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

    /// `flagged: interference, power`, for tables (the rules of the
    /// findings that are not valid notes).
    pub fn summary(&self) -> String {
        let faults = self.findings.iter().filter(|f| f.verdict != Verdict::Valid);
        if faults.clone().next().is_none() {
            return self.verdict.label().to_string();
        }
        let mut rules: Vec<&str> = Vec::new();
        for f in faults {
            if !rules.contains(&f.rule.name()) {
                rules.push(f.rule.name());
            }
        }
        format!("{}: {}", self.verdict.label(), rules.join(", "))
    }
}

/// The default of `interference_limit`: other processes' share of the CPUs.
pub const DEFAULT_INTERFERENCE_LIMIT: f64 = 0.10;
/// Fewest power samples a polled domain's window may have unflagged.
pub const MIN_SAMPLES: usize = 10;
/// Longest gap between a polled domain's samples, seconds.
pub const MAX_SAMPLE_GAP_S: f64 = 1.0;
/// Shortest window whose average power is held against the power limit.
pub const POWER_CHECK_MIN_S: f64 = 1.0;
/// How far above the power limit an average may lie.
pub const POWER_MARGIN: f64 = 0.10;
/// How far below zero net energy may go, as a share of the idle energy.
pub const NET_FLOOR: f64 = 0.10;
/// Clock reasons that are settings or rest, not slowdowns.
pub const BENIGN_THROTTLE: &[&str] = &["gpu-idle", "applications-clocks", "display-clocks"];

/// The thresholds and facts of the run the rules need.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// Share of the machine's CPU capacity other processes may use in a
    /// window before it is flagged.
    pub interference_limit: f64,
    /// The GPU power limit the running trial set (`gpu_power_limit_w`):
    /// power capping is then expected.
    pub trial_power_limit_w: Option<f64>,
    /// This process's PID, as NVML lists compute processes.
    pub pid: u32,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            interference_limit: DEFAULT_INTERFERENCE_LIMIT,
            trial_power_limit_w: None,
            pid: std::process::id(),
        }
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
        // A sum of parts: one finding per rule and verdict, counted.
        let parts = [
            ("train/epoch-1".to_string(), a.clone()),
            ("train/epoch-1".to_string(), a.clone()),
            ("train/epoch-1".to_string(), Validity::default()),
        ];
        let m = Validity::merge("train/epoch-1", &parts).unwrap();
        assert_eq!(m.verdict, Verdict::Flagged);
        assert_eq!(m.findings.len(), 1);
        assert!(
            m.findings[0]
                .detail
                .ends_with("(and 1 more part(s) like it)")
        );
        assert_eq!(m.findings[0].window, None);
        let named = [("train/epoch-2".to_string(), b.clone())];
        let m = Validity::merge("training", &named).unwrap();
        assert_eq!(m.findings[0].window.as_deref(), Some("train/epoch-2"));
        assert!(Validity::merge("x", &[]).is_none());
    }
}
