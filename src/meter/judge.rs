//! The rules of `validity.rs` applied to one window (each rule, its source
//! and its threshold are documented there).

use super::validity::{
    BENIGN_THROTTLE, Finding, MAX_SAMPLE_GAP_S, MIN_SAMPLES, NET_FLOOR, POWER_CHECK_MIN_S,
    POWER_MARGIN, Rule, Rules, Validity, Verdict,
};
use super::window::{COARSE_PERIODS, EnergyReading, self_check};
use super::{MeterInfo, PowerSample, Provenance};
use crate::gpu::api::GpuState;

/// A polled domain's power samples in one window.
#[derive(Debug, Clone, PartialEq)]
pub struct Samples {
    pub domain: String,
    pub count: usize,
    /// Longest time without a sample, window edges included, seconds.
    pub max_gap: f64,
}

/// Count and longest gap of each domain's samples over a window of
/// `seconds` (sample times from the window's start).
pub fn sample_stats(timeline: &[PowerSample], seconds: f64) -> Vec<Samples> {
    let mut out: Vec<Samples> = Vec::new();
    let mut last: Vec<f64> = Vec::new();
    for s in timeline {
        match out.iter().position(|o| o.domain == s.domain) {
            Some(k) => {
                out[k].count += 1;
                out[k].max_gap = out[k].max_gap.max(s.t - last[k]);
                last[k] = s.t;
            }
            None => {
                out.push(Samples {
                    domain: s.domain.clone(),
                    count: 1,
                    max_gap: s.t.max(0.0),
                });
                last.push(s.t);
            }
        }
    }
    for (o, l) in out.iter_mut().zip(last) {
        o.max_gap = o.max_gap.max(seconds - l);
    }
    out
}

/// What one window is judged on.
pub struct Evidence<'a> {
    pub info: &'a MeterInfo,
    /// The reading with its interference and idle baseline applied.
    pub reading: &'a EnergyReading,
    /// Every GPU state read during the window.
    pub gpu_states: &'a [GpuState],
    /// Polled domains' samples in the window (before downsampling).
    pub samples: &'a [Samples],
    /// The domain of the GPU this process computes on, if any.
    pub run_gpu: Option<&'a str>,
}

fn finding(rule: Rule, verdict: Verdict, detail: String) -> Finding {
    Finding {
        rule,
        verdict,
        detail,
        window: None,
    }
}

/// The window's verdict under every rule.
pub fn judge(rules: &Rules, e: &Evidence) -> Validity {
    let mut f = Vec::new();
    interference(rules, e, &mut f);
    gpu_processes(rules, e, &mut f);
    resolution(e, &mut f);
    power(e, &mut f);
    for d in &e.reading.domains {
        if let Some(c) = self_check(d, e.reading.seconds)
            && c.warning
        {
            f.push(finding(Rule::SelfCheck, Verdict::Flagged, c.describe()));
        }
    }
    throttle(rules, e, &mut f);
    Validity::of(f)
}

fn interference(rules: &Rules, e: &Evidence, f: &mut Vec<Finding>) {
    let Some(i) = &e.reading.interference else {
        return;
    };
    let capacity = i.cpus.max(1) as f64 * e.reading.seconds.0;
    if capacity > 0.0 && i.other_cpu.0 - i.resolution.0 > rules.interference_limit * capacity {
        f.push(finding(
            Rule::Interference,
            Verdict::Flagged,
            format!(
                "other processes used {:.0}% of the machine's CPU time ({:.2} of {:.2} CPU-s on {} CPUs, ±{:.2} s; limit {:.0}%)",
                i.other_share * 100.0,
                i.other_cpu.0,
                capacity,
                i.cpus,
                i.resolution.0,
                rules.interference_limit * 100.0
            ),
        ));
    }
}

/// Each GPU domain's states in the window.
fn by_gpu(states: &[GpuState]) -> Vec<(&str, Vec<&GpuState>)> {
    let mut v: Vec<(&str, Vec<&GpuState>)> = Vec::new();
    for s in states {
        match v.iter_mut().find(|(d, _)| *d == s.domain) {
            Some((_, list)) => list.push(s),
            None => v.push((&s.domain, vec![s])),
        }
    }
    v
}

fn gpu_processes(rules: &Rules, e: &Evidence, f: &mut Vec<Finding>) {
    for (domain, states) in by_gpu(e.gpu_states) {
        let mut pids: Vec<u32> = states
            .iter()
            .filter_map(|s| s.compute_pids.as_ref())
            .flatten()
            .copied()
            .collect();
        pids.sort_unstable();
        pids.dedup();
        let ours = pids.contains(&rules.pid);
        let others: Vec<u32> = pids.iter().copied().filter(|&p| p != rules.pid).collect();
        // Another PID namespace: one of the listed processes is this run.
        let presumed = !ours && e.run_gpu == Some(domain);
        if others.len() > usize::from(presumed) {
            let list: Vec<String> = others.iter().map(u32::to_string).collect();
            f.push(finding(
                Rule::GpuProcesses,
                Verdict::Flagged,
                format!(
                    "{domain}: {} other process(es) held a compute context during the window (pid {}){}",
                    others.len() - usize::from(presumed),
                    list.join(", "),
                    if presumed {
                        format!("; this process (pid {}) is not listed (another PID namespace?), so one of them is taken as this run", rules.pid)
                    } else {
                        String::new()
                    }
                ),
            ));
        }
    }
}

fn resolution(e: &Evidence, f: &mut Vec<Finding>) {
    let secs = e.reading.seconds.0;
    let counters = e
        .info
        .domains
        .iter()
        .filter(|d| d.provenance == Provenance::Counter);
    if let Some(p) = e.info.update_period {
        for d in counters {
            let approximated = e
                .reading
                .domains
                .iter()
                .any(|r| r.domain == d.domain && r.provenance == Provenance::Integrated);
            if secs < p.0 {
                f.push(finding(
                    Rule::Resolution,
                    if approximated { Verdict::Flagged } else { Verdict::Invalid },
                    format!(
                        "{}: window of {secs:.4} s is shorter than the counter's update period of {:.4} s: {}",
                        d.domain,
                        p.0,
                        if approximated {
                            "the figure is mean instant power x duration"
                        } else {
                            "no instant power to approximate it, and the counter difference is not a measurement of the window"
                        }
                    ),
                ));
            } else if secs < COARSE_PERIODS * p.0 {
                f.push(finding(
                    Rule::Resolution,
                    Verdict::Flagged,
                    format!(
                        "{}: window of {secs:.3} s spans only {:.1} counter updates ({:.0} ms each): off by up to about {:.0}% (flagged below {COARSE_PERIODS} updates)",
                        d.domain,
                        secs / p.0,
                        p.0 * 1e3,
                        100.0 * p.0 / secs
                    ),
                ));
            }
        }
    }
    for d in e
        .info
        .domains
        .iter()
        .filter(|d| d.provenance == Provenance::Integrated)
    {
        let s = e.samples.iter().find(|s| s.domain == d.domain);
        let (count, gap) = s.map_or((0, secs), |s| (s.count, s.max_gap));
        if count < MIN_SAMPLES || gap > MAX_SAMPLE_GAP_S {
            f.push(finding(
                Rule::Resolution,
                Verdict::Flagged,
                format!(
                    "{}: {count} power sample(s) over {secs:.3} s, longest gap {gap:.2} s (flagged below {MIN_SAMPLES} samples or above a {MAX_SAMPLE_GAP_S} s gap)",
                    d.domain
                ),
            ));
        }
    }
}

fn power(e: &Evidence, f: &mut Vec<Finding>) {
    let r = e.reading;
    let secs = r.seconds.0;
    for d in &r.domains {
        if d.provenance.is_modelled() {
            continue;
        }
        let resolved = match d.provenance {
            Provenance::Counter => e.info.update_period.is_none_or(|p| secs >= 2.0 * p.0),
            _ => e
                .samples
                .iter()
                .any(|s| s.domain == d.domain && s.count >= 2),
        };
        if d.joules.0 < 0.0 {
            f.push(finding(
                Rule::Power,
                Verdict::Invalid,
                format!(
                    "{}: energy went backwards by {:.3} J (a counter reset?)",
                    d.domain, -d.joules.0
                ),
            ));
        } else if d.joules.0 == 0.0 && secs > 0.0 && resolved {
            f.push(finding(
                Rule::Power,
                Verdict::Invalid,
                format!(
                    "{}: no energy over {secs:.3} s, longer than the meter's resolution (a counter that does not advance?)",
                    d.domain
                ),
            ));
        }
        let limit = e
            .gpu_states
            .iter()
            .filter(|s| s.domain == d.domain)
            .filter_map(|s| s.power_limit_w)
            .reduce(f64::max);
        if let Some(l) = limit
            && secs >= POWER_CHECK_MIN_S
            && d.avg_watts.0 > l * (1.0 + POWER_MARGIN)
        {
            f.push(finding(
                Rule::Power,
                Verdict::Invalid,
                format!(
                    "{}: average power {:.0} W over {secs:.1} s is above the GPU's power limit of {l:.0} W (+{:.0}% allowed): not a power this GPU can draw",
                    d.domain,
                    d.avg_watts.0,
                    POWER_MARGIN * 100.0
                ),
            ));
        }
    }
    if let (Some(net), Some(idle)) = (r.net_joules, r.idle_joules)
        && idle.0 > 0.0
        && net.0 < -NET_FLOOR * idle.0
    {
        f.push(finding(
            Rule::Power,
            Verdict::Flagged,
            format!(
                "net energy {:.2} J: the window drew {:.0}% less than the idle baseline ({:.2} J over it), so the baseline was disturbed (flagged below -{:.0}%)",
                net.0,
                -net.0 / idle.0 * 100.0,
                idle.0,
                NET_FLOOR * 100.0
            ),
        ));
    }
}

fn throttle(rules: &Rules, e: &Evidence, f: &mut Vec<Finding>) {
    for (domain, states) in by_gpu(e.gpu_states) {
        let mut seen: Vec<&str> = Vec::new();
        for r in states
            .iter()
            .filter_map(|s| s.throttle_reasons.as_ref())
            .flatten()
        {
            if !BENIGN_THROTTLE.contains(&r.as_str()) && !seen.contains(&r.as_str()) {
                seen.push(r);
            }
        }
        if let (Some(w), true) = (rules.trial_power_limit_w, seen.contains(&"sw-power-cap")) {
            seen.retain(|r| *r != "sw-power-cap");
            f.push(finding(
                Rule::Throttle,
                Verdict::Valid,
                format!("{domain}: sw-power-cap: the clocks held the draw to the {w:.0} W power limit this trial set (gpu_power_limit_w): expected, not a fault"),
            ));
        }
        if !seen.is_empty() {
            f.push(finding(
                Rule::Throttle,
                Verdict::Flagged,
                format!(
                    "{domain}: the GPU slowed its clocks during the window: {}",
                    seen.join(", ")
                ),
            ));
        }
    }
}

/// The steady-state rule of an inference window that ran `warmup_batches`
/// discarded batches before it opened.
pub fn steady_state(warmup_batches: u32) -> Option<Finding> {
    (warmup_batches == 0).then(|| {
        finding(
            Rule::SteadyState,
            Verdict::Flagged,
            "no warm-up batch ran before the inference window: its J/1000 includes the ramp-up of the first batch".into(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meter::DomainInfo;
    use crate::meter::interference::Interference;
    use crate::meter::window::DomainEnergy;
    use crate::util::units::{Joules, Seconds, Watts};

    fn info(provenance: Provenance, period: Option<f64>) -> MeterInfo {
        MeterInfo {
            name: "t".into(),
            domains: vec![DomainInfo {
                domain: "gpu:0".into(),
                meter: "t".into(),
                provenance,
                method: String::new(),
                caveat: None,
            }],
            update_period: period.map(Seconds),
            cpu: None,
        }
    }

    fn window(joules: f64, seconds: f64, provenance: Provenance) -> EnergyReading {
        let d = DomainEnergy {
            domain: "gpu:0".into(),
            meter: "t".into(),
            provenance,
            joules: Joules(joules),
            avg_watts: Watts(joules / seconds),
            peak_watts: None,
            idle_joules: None,
            net_joules: None,
            cross_check_joules: None,
            band: None,
            net_band: None,
            charged_seconds: None,
        };
        let mut r = EnergyReading::sum("w", []);
        r.seconds = Seconds(seconds);
        r.joules = Joules(joules);
        r.avg_watts = d.avg_watts;
        r.domains = vec![d];
        r
    }

    fn judged(
        info: &MeterInfo,
        r: &EnergyReading,
        states: &[GpuState],
        samples: &[Samples],
    ) -> Validity {
        judge(
            &Rules {
                pid: 100,
                ..Rules::default()
            },
            &Evidence {
                info,
                reading: r,
                gpu_states: states,
                samples,
                run_gpu: None,
            },
        )
    }

    fn rules_of(v: &Validity) -> Vec<(Rule, Verdict)> {
        v.findings.iter().map(|f| (f.rule, f.verdict)).collect()
    }

    #[test]
    fn samples_are_counted_with_the_longest_gap_edges_included() {
        let s = |t: f64| PowerSample {
            t,
            domain: "gpu:0".into(),
            watts: Watts(1.0),
        };
        let st = sample_stats(&[s(0.1), s(0.2), s(1.6)], 2.0);
        assert_eq!(st.len(), 1);
        assert_eq!(st[0].count, 3);
        assert!((st[0].max_gap - 1.4).abs() < 1e-12);
        assert!((sample_stats(&[s(0.1)], 2.0)[0].max_gap - 1.9).abs() < 1e-12);
    }

    #[test]
    fn a_polled_domain_needs_enough_evenly_spread_samples() {
        let i = info(Provenance::Integrated, None);
        let r = window(100.0, 2.0, Provenance::Integrated);
        let many = [Samples {
            domain: "gpu:0".into(),
            count: 100,
            max_gap: 0.05,
        }];
        assert_eq!(judged(&i, &r, &[], &many).verdict, Verdict::Valid);
        let few = [Samples {
            count: 5,
            ..many[0].clone()
        }];
        let v = judged(&i, &r, &[], &few);
        assert_eq!(rules_of(&v), [(Rule::Resolution, Verdict::Flagged)]);
        assert!(v.findings[0].detail.contains("5 power sample(s)"), "{v:?}");
        let gap = [Samples {
            max_gap: 1.5,
            ..many[0].clone()
        }];
        assert!(
            judged(&i, &r, &[], &gap).findings[0]
                .detail
                .contains("gap 1.50 s")
        );
        // No sample at all: flagged, and no energy is then not held against it.
        let v = judged(&i, &window(0.0, 2.0, Provenance::Integrated), &[], &[]);
        assert_eq!(rules_of(&v), [(Rule::Resolution, Verdict::Flagged)]);
    }

    #[test]
    fn a_counter_that_disagrees_with_its_integral_is_flagged() {
        let i = info(Provenance::Counter, Some(0.1));
        let mut r = window(105.0, 4.0, Provenance::Counter);
        r.domains[0].cross_check_joules = Some(Joules(100.0));
        let v = judged(&i, &r, &[], &[]);
        assert_eq!(rules_of(&v), [(Rule::SelfCheck, Verdict::Flagged)]);
        assert!(v.findings[0].detail.contains("+5.0%"), "{v:?}");
        r.domains[0].cross_check_joules = Some(Joules(104.0));
        assert_eq!(judged(&i, &r, &[], &[]).verdict, Verdict::Valid);
    }

    #[test]
    fn other_cpu_work_beyond_the_limit_and_the_tick_resolution_is_flagged() {
        let i = info(Provenance::Estimated, None);
        let mut r = window(10.0, 2.0, Provenance::Estimated);
        let counters = |busy: f64, own: f64| {
            Some(Interference::from_counters(
                Seconds(busy),
                Seconds(own),
                Seconds(2.0),
                2,
                Seconds(0.01),
            ))
        };
        // Quiet: 2 CPU-s of our own, 0.05 of the system's (1.25%).
        r.interference = counters(2.05, 2.0);
        assert_eq!(judged(&i, &r, &[], &[]).verdict, Verdict::Valid);
        // 10% plus less than the resolution (0.04 CPU-s): not flagged.
        r.interference = counters(2.0 + 0.43, 2.0);
        assert_eq!(judged(&i, &r, &[], &[]).verdict, Verdict::Valid);
        // A neighbour on one of the two CPUs: 50%.
        r.interference = counters(4.0, 2.0);
        let v = judged(&i, &r, &[], &[]);
        assert_eq!(rules_of(&v), [(Rule::Interference, Verdict::Flagged)]);
        assert!(
            v.findings[0].detail.starts_with("other processes used 50%"),
            "{v:?}"
        );
        assert!(v.disturbed());
    }

    fn gpu(pids: &[u32], reasons: &[&str]) -> GpuState {
        GpuState {
            domain: "gpu:0".into(),
            compute_pids: Some(pids.to_vec()),
            throttle_reasons: Some(reasons.iter().map(|s| s.to_string()).collect()),
            power_limit_w: Some(700.0),
            ..GpuState::default()
        }
    }

    #[test]
    fn other_gpu_processes_and_slowdowns_are_flagged_settings_are_not() {
        let i = info(Provenance::Counter, Some(0.1));
        let r = window(600.0, 2.0, Provenance::Counter);
        let quiet = [
            gpu(&[100], &["gpu-idle"]),
            gpu(&[100], &["applications-clocks"]),
        ];
        assert_eq!(judged(&i, &r, &quiet, &[]).verdict, Verdict::Valid);
        let busy = [
            gpu(&[100], &[]),
            gpu(&[100, 4242], &["hw-thermal-slowdown", "gpu-idle"]),
        ];
        let v = judged(&i, &r, &busy, &[]);
        assert_eq!(
            rules_of(&v),
            [
                (Rule::GpuProcesses, Verdict::Flagged),
                (Rule::Throttle, Verdict::Flagged)
            ]
        );
        assert!(v.findings[0].detail.contains("pid 4242"), "{v:?}");
        assert!(
            v.findings[1].detail.ends_with("hw-thermal-slowdown"),
            "{v:?}"
        );
        // Another PID namespace: this process is not listed; on the run's
        // GPU one listed process is taken as this run.
        let ns = [gpu(&[7], &[])];
        let rules = Rules {
            pid: 100,
            ..Rules::default()
        };
        let e = |run_gpu| Evidence {
            info: &i,
            reading: &r,
            gpu_states: &ns,
            samples: &[],
            run_gpu,
        };
        assert_eq!(judge(&rules, &e(Some("gpu:0"))).verdict, Verdict::Valid);
        assert_eq!(judge(&rules, &e(None)).verdict, Verdict::Flagged);
        // A power cap the trial set is expected: a valid note.
        let capped = [gpu(&[100], &["sw-power-cap"])];
        assert_eq!(judged(&i, &r, &capped, &[]).verdict, Verdict::Flagged);
        let rules = Rules {
            pid: 100,
            trial_power_limit_w: Some(300.0),
            ..Rules::default()
        };
        let e = Evidence {
            gpu_states: &capped,
            ..e(None)
        };
        let v = judge(&rules, &e);
        assert_eq!(rules_of(&v), [(Rule::Throttle, Verdict::Valid)]);
        assert!(
            v.findings[0]
                .detail
                .contains("300 W power limit this trial set"),
            "{v:?}"
        );
        assert_eq!(v.summary(), "valid");
    }

    #[test]
    fn inference_without_warm_up_is_not_steady_state() {
        let f = steady_state(0).unwrap();
        assert_eq!((f.rule, f.verdict), (Rule::SteadyState, Verdict::Flagged));
        assert!(steady_state(1).is_none());
    }
}
