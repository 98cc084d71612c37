//! The real NVML path (nvml-wrapper, dynamic loading, C ABI, field values,
//! error codes) against the stand-in library of tools/nvml-standin, which
//! plays a scenario and logs the true energy at every counter read.
//!
//! Each test copies the library into its own folder with its scenario
//! beside it (`standin.json`), so tests load separate instances.

use joulebench::config::{GpuSelection, MeterChoice};
use joulebench::meter::validity::{Rule, Verdict};
use joulebench::meter::window::{SELF_CHECK_MIN_SECONDS, self_check};
use joulebench::meter::{self, Measurer, MeterOptions, Provenance};
use joulebench::util::device::DeviceSpec;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn built() -> &'static Path {
    common::standin_lib()
}

/// A folder with its own copy of the library and `scenario` beside it.
struct StandIn {
    dir: tempfile::TempDir,
}

impl StandIn {
    fn new(mut scenario: Value) -> StandIn {
        let dir = tempfile::tempdir().unwrap();
        scenario["ledger"] = json!(dir.path().join("ledger.jsonl"));
        std::fs::copy(built(), dir.path().join("libnvidia-ml.so.1")).unwrap();
        std::fs::write(dir.path().join("standin.json"), scenario.to_string()).unwrap();
        StandIn { dir }
    }

    fn lib(&self) -> PathBuf {
        self.dir.path().join("libnvidia-ml.so.1")
    }

    /// (gpu, t, reported mJ, true mJ) of every counter read so far.
    fn ledger(&self) -> Vec<(u64, f64, f64, f64)> {
        let text =
            std::fs::read_to_string(self.dir.path().join("ledger.jsonl")).unwrap_or_default();
        text.lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (
                    v["gpu"].as_u64().unwrap(),
                    v["t"].as_f64().unwrap(),
                    v["reported_mj"].as_f64().unwrap(),
                    v["true_mj"].as_f64().unwrap(),
                )
            })
            .collect()
    }

    fn measurer(&self, gpus: GpuSelection) -> Measurer {
        let opts = MeterOptions {
            choice: MeterChoice::Nvml,
            gpus,
            nvml_lib: Some(self.lib()),
            ..MeterOptions::default()
        };
        let built = meter::build(&opts, DeviceSpec::Cpu).unwrap();
        Measurer::new(built.meter, candle_core::Device::Cpu)
    }
}

fn gpu(extra: Value) -> Value {
    let mut g = json!({"power": {"kind": "constant", "watts": 300.0}, "counter_update_ms": 100.0});
    for (k, v) in extra.as_object().unwrap() {
        g[k] = v.clone();
    }
    g
}

fn sleep(s: f64) {
    std::thread::sleep(Duration::from_secs_f64(s));
}

#[test]
fn counter_windows_equal_what_the_counter_reported_and_the_true_energy() {
    // A continuous counter on a GPU whose power ramps 100 -> 500 W.
    let s = StandIn::new(json!({"gpus": [gpu(json!({
        "counter_update_ms": 0.0,
        "power": {"kind": "trace", "points": [[0.0, 100.0], [3.0, 500.0]]}
    }))]}));
    let mut m = s.measurer(GpuSelection::All);
    assert_eq!(m.info().domains[0].provenance, Provenance::Counter);
    assert!(
        m.info().domains[0]
            .method
            .contains(&s.lib().display().to_string()),
        "the library is recorded"
    );
    let before = s.ledger().len();
    let mut readings = Vec::new();
    for secs in [0.3, 0.5, 0.2] {
        let w = m.begin("w").unwrap();
        sleep(secs);
        readings.push(m.end(w).unwrap());
    }
    let reads = &s.ledger()[before..];
    assert_eq!(reads.len(), 6, "one counter read per window edge");
    for (r, edge) in readings.iter().zip(reads.chunks(2)) {
        let reported = (edge[1].2 - edge[0].2) / 1000.0;
        let truth = (edge[1].3 - edge[0].3) / 1000.0;
        assert!(
            (r.joules.0 - reported).abs() < 1e-9,
            "{} vs {reported}",
            r.joules.0
        );
        assert!(
            (r.joules.0 - truth).abs() / truth < 0.01,
            "{} vs true {truth}",
            r.joules.0
        );
        assert!(r.flags.is_empty(), "{:?}", r.flags);
    }
}

#[test]
fn a_window_shorter_than_the_counters_update_period_is_flagged_and_approximated() {
    let s = StandIn::new(json!({"gpus": [gpu(json!({"counter_update_ms": 100.0}))]}));
    let mut m = s.measurer(GpuSelection::Indices(vec![0]));
    let p = m
        .info()
        .update_period
        .expect("the update period was measured");
    assert!((p.0 - 0.1).abs() < 0.02, "{p:?}");
    let w = m.begin("short").unwrap();
    sleep(0.02);
    let r = m.end(w).unwrap();
    assert!(
        r.flags
            .iter()
            .any(|f| f.contains("shorter than the meter's update period")),
        "{:?}",
        r.flags
    );
    assert_eq!(r.domains[0].provenance, Provenance::Integrated);
    // 300 W x ~0.02 s, from instant power, not a silent zero.
    let w_avg = r.joules.0 / r.seconds.0;
    assert!((w_avg - 300.0).abs() < 15.0, "{w_avg}");
    // A window of a few updates keeps the counter, flagged with its granularity.
    let w = m.begin("coarse").unwrap();
    sleep(0.3);
    let r = m.end(w).unwrap();
    assert_eq!(r.domains[0].provenance, Provenance::Counter);
    assert!(
        r.flags.iter().any(|f| f.contains("spans only")),
        "{:?}",
        r.flags
    );
}

#[test]
fn without_a_counter_energy_is_integrated_from_instant_power() {
    let s = StandIn::new(json!({"gpus": [gpu(json!({"energy_counter": false}))]}));
    let mut m = s.measurer(GpuSelection::All);
    assert_eq!(m.info().domains[0].provenance, Provenance::Integrated);
    assert!(
        m.info().domains[0].method.contains("instant power"),
        "{:?}",
        m.info().domains[0]
    );
    let w = m.begin("w").unwrap();
    sleep(1.0);
    let r = m.end(w).unwrap();
    let w_avg = r.joules.0 / r.seconds.0;
    assert!((w_avg - 300.0).abs() / 300.0 < 0.03, "{w_avg}");
    // A window shorter than the 20-ms polling interval still reads its energy
    // (the last sample's power held up to the edge), never a silent zero.
    for _ in 0..5 {
        let w = m.begin("tiny").unwrap();
        sleep(0.004);
        let r = m.end(w).unwrap();
        let w_avg = r.joules.0 / r.seconds.0;
        assert!(
            (w_avg - 300.0).abs() / 300.0 < 0.03,
            "{w_avg} W over {} s",
            r.seconds.0
        );
    }
}

#[test]
fn other_gpu_processes_and_slowdowns_flag_the_window_and_a_trials_own_cap_does_not() {
    let s = StandIn::new(json!({"gpus": [
        gpu(json!({
            "caller_listed": true,
            "processes": [{"value": 4242, "from_s": 0.0}],
            "throttle": [{"value": ["hw-thermal-slowdown", "gpu-idle"], "from_s": 0.0}]
        })),
        // 300 W wanted, 250 W allowed: the board caps it (sw-power-cap).
        gpu(json!({"power_limit_w": 250.0, "caller_listed": true}))
    ]}));
    let mut m = s.measurer(GpuSelection::All);
    let w = m.begin("w").unwrap();
    sleep(1.2);
    let r = m.end(w).unwrap();
    let states: Vec<_> = r
        .gpu_states
        .iter()
        .map(|g| (&g.compute_pids, &g.throttle_reasons))
        .collect();
    let own = std::process::id();
    assert_eq!(
        r.gpu_states[0].compute_pids,
        Some(vec![4242, own]),
        "{states:?}"
    );
    assert_eq!(
        r.gpu_states[1].throttle_reasons.as_deref(),
        Some(&["sw-power-cap".to_string()][..]),
        "{states:?}"
    );
    let v = r.validity.unwrap();
    let found = |rule: Rule, text: &str| {
        v.findings
            .iter()
            .any(|f| f.rule == rule && f.verdict == Verdict::Flagged && f.detail.contains(text))
    };
    assert!(
        found(Rule::GpuProcesses, "gpu:0: 1 other process(es)"),
        "{v:?}"
    );
    assert!(found(Rule::GpuProcesses, "pid 4242"), "{v:?}");
    assert!(
        !v.findings
            .iter()
            .any(|f| f.detail.contains(&format!("pid {own}")))
    );
    assert!(
        found(
            Rule::Throttle,
            "gpu:0: the GPU slowed its clocks during the window: hw-thermal-slowdown"
        ),
        "{v:?}"
    );
    assert!(
        found(
            Rule::Throttle,
            "gpu:1: the GPU slowed its clocks during the window: sw-power-cap"
        ),
        "{v:?}"
    );
    assert!(v.disturbed());
    // The same cap set by the trial (gpu_power_limit_w) is expected.
    m.rules_mut().trial_power_limit_w = Some(250.0);
    let w = m.begin("w").unwrap();
    sleep(0.6);
    let v = m.end(w).unwrap().validity.unwrap();
    assert!(
        v.findings.iter().any(|f| f.rule == Rule::Throttle
            && f.verdict == Verdict::Valid
            && f.detail.starts_with("gpu:1: sw-power-cap: the clocks held the draw to the 250 W power limit this trial set")),
        "{v:?}"
    );
    assert!(
        !v.findings
            .iter()
            .any(|f| f.detail.starts_with("gpu:1: the GPU slowed")),
        "{v:?}"
    );
}

#[test]
fn a_process_that_leaves_mid_run_stops_flagging_later_windows() {
    let s = StandIn::new(json!({"gpus": [gpu(json!({
        "processes": [{"value": 777, "from_s": 0.0, "until_s": 0.8}]
    }))]}));
    let mut m = s.measurer(GpuSelection::All);
    let w = m.begin("early").unwrap();
    sleep(0.6);
    let early = m.end(w).unwrap().validity.unwrap();
    assert!(
        early
            .findings
            .iter()
            .any(|f| f.rule == Rule::GpuProcesses && f.detail.contains("pid 777")),
        "{early:?}"
    );
    sleep(1.0);
    let w = m.begin("late").unwrap();
    sleep(0.6);
    let late = m.end(w).unwrap().validity.unwrap();
    assert!(
        !late.findings.iter().any(|f| f.rule == Rule::GpuProcesses),
        "{late:?}"
    );
}

#[test]
fn a_mig_gpus_readings_say_they_are_the_whole_gpus() {
    let s = StandIn::new(json!({"gpus": [gpu(json!({"mig": true}))]}));
    let mut m = s.measurer(GpuSelection::All);
    let w = m.begin("w").unwrap();
    sleep(0.15);
    let r = m.end(w).unwrap();
    assert!(
        r.flags
            .iter()
            .any(|f| f.contains("gpu:0: MIG mode is on: the reading is the whole GPU's")),
        "{:?}",
        r.flags
    );
}

#[test]
fn the_self_check_flags_a_counter_that_disagrees_with_instant_power() {
    // Two GPUs, one whose counter over-reads by 5%.
    let s = StandIn::new(json!({"gpus": [
        gpu(json!({"counter_update_ms": 1.0})),
        gpu(json!({"counter_update_ms": 1.0, "counter_scale": 1.05})),
    ]}));
    let mut m = s.measurer(GpuSelection::All);
    assert_eq!(m.info().domains.len(), 2, "one domain per GPU");
    let w = m.begin("long").unwrap();
    sleep(SELF_CHECK_MIN_SECONDS + 0.2);
    let r = m.end(w).unwrap();
    let good = self_check(&r.domains[0], r.seconds).unwrap();
    let bad = self_check(&r.domains[1], r.seconds).unwrap();
    assert!(!good.warning && good.difference_pct.abs() < 1.0, "{good:?}");
    assert!(
        bad.warning && (bad.difference_pct - 5.0).abs() < 1.0,
        "{bad:?}"
    );
    assert!(
        r.flags
            .iter()
            .any(|f| f.starts_with("gpu:1: the energy counter")),
        "{:?}",
        r.flags
    );
    assert!(
        !r.flags.iter().any(|f| f.starts_with("gpu:0:")),
        "{:?}",
        r.flags
    );
}

#[test]
fn a_gpu_index_the_node_lacks_is_refused_with_the_count() {
    let s = StandIn::new(json!({"gpus": [gpu(json!({}))]}));
    let opts = MeterOptions {
        choice: MeterChoice::Nvml,
        gpus: GpuSelection::Indices(vec![3]),
        nvml_lib: Some(s.lib()),
        ..MeterOptions::default()
    };
    let e = meter::build(&opts, DeviceSpec::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("names GPU 3, but NVML sees 1 GPU(s)"), "{e}");
    let opts = MeterOptions {
        nvml_lib: Some(s.dir.path().join("missing.so")),
        ..opts
    };
    let e = meter::build(&opts, DeviceSpec::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("missing.so"),
        "a named library that fails is an error, not a fallback: {e}"
    );
}

const SUITE: &str = r#"
name = "standin"
[defaults]
seeds = [1]
epochs = 2
max_train_samples = 2000
max_eval_samples = 500
[[workload]]
name = "mlp"
hidden = [64]
[[variant]]
name = "a"
[[variant]]
name = "b"
batch_size = 64
[[variant]]
name = "c"
batch_size = 32
"#;

fn run_cli(s: &StandIn, idle_seconds: &str) -> (std::process::Output, PathBuf) {
    let dir = s.dir.path();
    let data = dir.join("data");
    let fixture = fixture_dir(&data);
    std::fs::write(dir.join("suite.toml"), SUITE).unwrap();
    let out = dir.join("results");
    let o = Command::new(env!("CARGO_BIN_EXE_joulebench"))
        .args([
            "run",
            "suite.toml",
            "--out",
            "results",
            "--meter",
            "nvml",
            "--gpus",
            "all",
            "--idle-seconds",
            idle_seconds,
            "--data-dir",
        ])
        .arg(&fixture)
        .env("JOULEBENCH_NVML_LIB", s.lib())
        .current_dir(dir)
        .output()
        .unwrap();
    let run = std::fs::read_dir(out.join("standin"))
        .ok()
        .and_then(|mut d| d.next())
        .map(|e| e.unwrap().path())
        .unwrap_or_default();
    (o, run)
}

mod common;

fn fixture_dir(dir: &Path) -> PathBuf {
    common::fixture_dataset(dir)
}

fn records(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("trials.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every reading of a record (idle, epochs, test, inference), as JSON.
fn windows(r: &Value) -> Vec<&Value> {
    let mut w: Vec<&Value> = vec![&r["idle"]];
    for e in r["epochs"].as_array().unwrap() {
        w.push(&e["train"]);
        w.push(&e["validation"]);
    }
    w.push(&r["test"]["window"]);
    w.push(&r["inference"]["window"]);
    w
}

#[test]
fn a_cpu_run_measures_the_nodes_gpu_through_the_real_nvml_path() {
    let s = StandIn::new(json!({"gpus": [gpu(json!({
        "counter_update_ms": 0.0,
        "power": {"kind": "load-following", "idle_w": 84.0, "busy_w": 684.0}
    }))]}));
    let (o, run) = run_cli(&s, "0.3");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let recs = records(&run);
    assert_eq!(recs.len(), 3);
    let ledger = s.ledger();
    let mut counted = 0;
    for r in &recs {
        assert_eq!(r["idle"]["domains"][0]["provenance"], "counter");
        assert_eq!(r["status"]["state"], "completed");
        assert_eq!(r["inference"]["warmup_batches"], 1, "{}", r["inference"]);
        // Every window is judged, and the trial's verdict is the worst of
        // theirs, with each of their findings named by its window.
        let rank = |v: &Value| ["valid", "flagged", "invalid"].iter().position(|x| v == x);
        let worst = windows(r)
            .iter()
            .map(|w| rank(&w["validity"]["verdict"]).unwrap_or_else(|| panic!("not judged: {w}")))
            .max();
        assert_eq!(rank(&r["validity"]["verdict"]), worst, "{}", r["validity"]);
        for w in windows(r) {
            for f in w["validity"]["findings"].as_array().into_iter().flatten() {
                let named = r["validity"]["findings"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|t| {
                        t["rule"] == f["rule"]
                            && t["detail"] == f["detail"]
                            && t["window"] == w["window"]
                    });
                assert!(named, "{f} of {} not in {}", w["window"], r["validity"]);
            }
        }
        for w in windows(r) {
            let d = &w["domains"][0];
            assert_eq!(d["domain"].as_str(), Some("gpu:0"));
            if d["provenance"] != "counter" {
                // Only a window shorter than the counter's update period may be approximated.
                let flags = w["flags"].to_string();
                assert!(
                    d["provenance"] == "integrated"
                        && flags.contains("shorter than the meter's update period"),
                    "{w}"
                );
                continue;
            }
            counted += 1;
            let j = d["joules"].as_f64().unwrap();
            // Gross, idle and net agree.
            if let (Some(i), Some(n)) = (d["idle_joules"].as_f64(), d["net_joules"].as_f64()) {
                assert!((j - i - n).abs() < 1e-6, "{w}");
            }
            // The figure is a difference of two counter reads, and within 1% of the truth.
            let pair = ledger.iter().enumerate().find_map(|(a, x)| {
                ledger[a + 1..]
                    .iter()
                    .find(|y| ((y.2 - x.2) / 1000.0 - j).abs() < 1e-9)
                    .map(|y| (x, y))
            });
            let (x, y) =
                pair.unwrap_or_else(|| panic!("no pair of counter reads differs by {j} J"));
            let truth = (y.3 - x.3) / 1000.0;
            assert!(
                (j - truth).abs() <= 0.01 * truth + 0.002,
                "{j} J vs true {truth} J"
            );
        }
    }
    assert!(counted >= 2 * recs.len(), "{counted} counter windows");
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("manifest.json")).unwrap()).unwrap();
    assert!(
        manifest["gpus"][0]["name"]
            .as_str()
            .unwrap()
            .contains("stand-in"),
        "{manifest}"
    );
    // `meters` lists the node's GPU on a CPU run, from the same library.
    let o = Command::new(env!("CARGO_BIN_EXE_joulebench"))
        .args(["meters", "--idle-seconds", "0.2", "--meter", "nvml"])
        .env("JOULEBENCH_NVML_LIB", s.lib())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("nvml      available: 1 domain(s)")
            && text.contains("joulebench NVML stand-in"),
        "{text}"
    );
}

#[test]
fn a_gpu_lost_mid_run_fails_its_trial_with_the_reason_and_the_suite_goes_on() {
    // Lost after 1 s: after the meter opened (~0.1 s: five 20-ms counter
    // updates) and inside the run (three trials, each with a 0.6-s idle window).
    let s = StandIn::new(
        json!({"gpus": [gpu(json!({"counter_update_ms": 20.0, "lost_after_s": 1.0}))]}),
    );
    let (o, run) = run_cli(&s, "0.6");
    assert_eq!(
        o.status.code(),
        Some(2),
        "failed trials exit 2: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let recs = records(&run);
    assert_eq!(recs.len(), 3, "every planned trial has a record");
    let failed: Vec<&Value> = recs
        .iter()
        .filter(|r| r["status"]["state"] == "failed")
        .collect();
    assert!(!failed.is_empty());
    for r in failed {
        let e = r["status"]["error"].as_str().unwrap();
        assert!(
            e.contains("GPU") && e.to_lowercase().contains("lost"),
            "{e}"
        );
    }
}
