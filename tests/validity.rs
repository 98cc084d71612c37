//! The validity rules through the measurer: every window judged when it
//! closes, on a scripted meter (resolution, power, the idle baseline) and
//! under a real competing process (interference). The GPU rules run
//! against the NVML stand-in in `nvml_standin.rs`; each rule's thresholds
//! are unit-tested in `src/meter/judge.rs`.

use joulebench::gpu::api::GpuState;
use joulebench::meter::fake::{ConstantPowerMeter, ScriptedMeter};
use joulebench::meter::validity::{Rule, Validity, Verdict};
use joulebench::meter::{DomainInfo, Measurer, MeterInfo, Provenance};
use joulebench::util::units::{Joules, Seconds, Watts};
use std::time::Duration;

fn counter_info(period: f64) -> MeterInfo {
    MeterInfo {
        name: "scripted".into(),
        domains: vec![DomainInfo {
            domain: "gpu:0".into(),
            meter: "scripted".into(),
            provenance: Provenance::Counter,
            method: "scripted counter".into(),
            caveat: None,
        }],
        update_period: Some(Seconds(period)),
        cpu: None,
    }
}

type Script = Vec<(f64, Vec<Joules>, Vec<Option<Watts>>)>;

/// One window per pair of script entries, each judged by the measurer.
fn windows(info: MeterInfo, script: Script, states: Vec<GpuState>) -> Vec<Validity> {
    let n = script.len() / 2;
    let meter = ScriptedMeter::new(info, script).with_gpu_states(states);
    let mut m = Measurer::new(Box::new(meter), candle_core::Device::Cpu);
    (0..n)
        .map(|_| {
            let w = m.begin("w").unwrap();
            m.end(w).unwrap().validity.unwrap()
        })
        .collect()
}

fn only(v: &Validity) -> (Rule, Verdict) {
    let faults: Vec<_> = v
        .findings
        .iter()
        .filter(|f| f.rule != Rule::Interference)
        .map(|f| (f.rule, f.verdict))
        .collect();
    assert_eq!(faults.len(), 1, "{v:?}");
    faults[0]
}

#[test]
fn windows_too_short_for_the_counter_are_flagged_or_invalid() {
    let j = |x: f64| vec![Joules(x)];
    let w = |x: f64| vec![Some(Watts(x))];
    let v = windows(
        counter_info(0.1),
        vec![
            // 50 ms with instant power: approximated, flagged.
            (0.0, j(0.0), w(200.0)),
            (0.05, j(0.0), w(200.0)),
            // 50 ms without instant power: not a measurement.
            (1.0, j(100.0), vec![None]),
            (1.05, j(100.0), vec![None]),
            // 0.5 s: five counter updates, coarse.
            (2.0, j(200.0), w(200.0)),
            (2.5, j(300.0), w(200.0)),
            // 2 s: twenty updates, fine.
            (3.0, j(300.0), w(200.0)),
            (5.0, j(700.0), w(200.0)),
        ],
        vec![],
    );
    assert_eq!(only(&v[0]), (Rule::Resolution, Verdict::Flagged));
    assert!(
        v[0].findings
            .iter()
            .any(|f| f.detail.contains("mean instant power"))
    );
    assert_eq!(only(&v[1]), (Rule::Resolution, Verdict::Invalid));
    assert_eq!(only(&v[2]), (Rule::Resolution, Verdict::Flagged));
    assert!(
        v[2].findings
            .iter()
            .any(|f| f.detail.contains("5.0 counter updates"))
    );
    assert!(
        v[3].findings.iter().all(|f| f.rule == Rule::Interference),
        "{:?}",
        v[3]
    );
}

#[test]
fn impossible_power_is_invalid() {
    let j = |x: f64| vec![Joules(x)];
    let p = vec![Some(Watts(300.0))];
    let limit = GpuState {
        domain: "gpu:0".into(),
        power_limit_w: Some(700.0),
        ..GpuState::default()
    };
    let v = windows(
        counter_info(0.1),
        vec![
            // A counter stuck over 2 s.
            (0.0, j(500.0), p.clone()),
            (2.0, j(500.0), p.clone()),
            // Backwards.
            (3.0, j(900.0), p.clone()),
            (5.0, j(400.0), p.clone()),
            // 900 W average on a 700 W board.
            (6.0, j(1000.0), p.clone()),
            (8.0, j(2800.0), p.clone()),
            // 750 W: within the 10% margin.
            (9.0, j(3000.0), p.clone()),
            (11.0, j(4500.0), p),
        ],
        vec![limit],
    );
    assert_eq!(only(&v[0]), (Rule::Power, Verdict::Invalid));
    assert!(
        v[0].findings
            .iter()
            .any(|f| f.detail.contains("no energy over 2.000 s"))
    );
    assert_eq!(only(&v[1]), (Rule::Power, Verdict::Invalid));
    assert!(
        v[1].findings
            .iter()
            .any(|f| f.detail.contains("went backwards"))
    );
    assert_eq!(only(&v[2]), (Rule::Power, Verdict::Invalid));
    assert!(
        v[2].findings
            .iter()
            .any(|f| f.detail.contains("average power 900 W") && f.detail.contains("700 W"))
    );
    assert!(
        v[3].findings.iter().all(|f| f.rule == Rule::Interference),
        "{:?}",
        v[3]
    );
}

#[test]
fn a_window_far_below_the_idle_baseline_says_the_baseline_was_disturbed() {
    let info = MeterInfo {
        update_period: None,
        ..counter_info(0.1)
    };
    let j = |x: f64| vec![Joules(x)];
    let meter = ScriptedMeter::new(
        info,
        vec![
            // Idle at 100 W (a neighbour ran), then work at 80 W.
            (0.0, j(0.0), vec![None]),
            (2.0, j(200.0), vec![None]),
            (3.0, j(200.0), vec![None]),
            (5.0, j(360.0), vec![None]),
            // Work at 95 W: within 10% of the baseline.
            (6.0, j(400.0), vec![None]),
            (8.0, j(590.0), vec![None]),
        ],
    );
    let mut m = Measurer::new(Box::new(meter), candle_core::Device::Cpu);
    let idle = m.measure_idle(0.0).unwrap();
    assert!(idle.validity.is_some());
    let w = m.begin("train/epoch-1").unwrap();
    let low = m.end(w).unwrap();
    assert_eq!(
        only(low.validity.as_ref().unwrap()),
        (Rule::Power, Verdict::Flagged)
    );
    let f = &low.validity.as_ref().unwrap().findings;
    assert!(
        f.iter()
            .any(|f| f.detail.contains("20% less than the idle baseline")),
        "{f:?}"
    );
    let w = m.begin("train/epoch-2").unwrap();
    let near = m.end(w).unwrap();
    assert!(
        near.validity
            .unwrap()
            .findings
            .iter()
            .all(|f| f.rule == Rule::Interference)
    );
    // The trial's verdict names the window.
    let t = Validity::combine([("train/epoch-1", low.validity.as_ref().unwrap())]);
    assert_eq!(t.findings[0].window.as_deref(), Some("train/epoch-1"));
}

/// A busy loop in a child process, killed when dropped.
struct BusyLoop(std::process::Child);

impl Drop for BusyLoop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_competing_process_flags_the_window_and_names_its_share() {
    // Only the loaded case is asserted: this machine is shared, so a
    // "quiet" window here could be disturbed by anyone (the quiet case is
    // unit-tested with synthetic counters in src/meter/judge.rs).
    let busy = BusyLoop(
        std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(100));
    let mut m = Measurer::new(
        Box::new(ConstantPowerMeter::new(vec![(
            "cpu-fake".into(),
            Watts(10.0),
        )])),
        candle_core::Device::Cpu,
    );
    let w = m.begin("train/epoch-1").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let r = m.end(w).unwrap();
    drop(busy);
    let i = r.interference.expect("/proc/stat is readable here");
    // One CPU's worth of busy loop (or less, if the machine is overloaded,
    // but then others' work makes up the rest).
    assert!(
        i.other_cpu.0 >= 0.5 * r.seconds.0,
        "{i:?} over {} s",
        r.seconds.0
    );
    let v = r.validity.unwrap();
    assert_eq!(v.verdict, Verdict::Flagged, "{v:?}");
    let f = v
        .findings
        .iter()
        .find(|f| f.rule == Rule::Interference)
        .unwrap();
    let share = format!("other processes used {:.0}%", i.other_share * 100.0);
    assert!(f.detail.starts_with(&share), "{} vs {share}", f.detail);
    assert!(f.detail.contains("limit 10%"), "{}", f.detail);
    assert!(v.disturbed());
}
