//! GPU power limit and locked clocks as techniques, against the NVML
//! stand-in (tools/nvml-standin), whose "driver" keeps settings in a state
//! file so they outlive the process that made them, as on a real GPU, and
//! whose load-following power is capped by the limit in force.
//!
//! Every exit path must leave the original limit in place: a normal end, a
//! failed trial, SIGTERM, and SIGKILL followed by `--resume`. Refusals: no
//! `--allow-gpu-settings`, a limit outside NVML's constraints, no permission.

mod common;

use common::{SuiteEnv, text};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn built() -> &'static Path {
    common::standin_lib()
}

/// A suite folder plus a stand-in library whose driver state lives in
/// `driver-state.json` (700 W default limit, 200..=700 W accepted).
struct Rig {
    env: SuiteEnv,
}

impl Rig {
    fn new(suite: &str, permission: bool) -> Rig {
        Rig::with_gpu(
            suite,
            permission,
            json!({"power": {"kind": "load-following", "idle_w": 84.0, "busy_w": 684.0}}),
        )
    }

    fn with_gpu(suite: &str, permission: bool, gpu_spec: Value) -> Rig {
        let env = SuiteEnv::new(suite);
        let gpu = env.path("gpu");
        std::fs::create_dir_all(&gpu).unwrap();
        std::fs::copy(built(), gpu.join("libnvidia-ml.so.1")).unwrap();
        let scenario = json!({
            "state_file": gpu.join("driver-state.json"),
            "settings_permission": permission,
            "gpus": [gpu_spec]
        });
        std::fs::write(gpu.join("standin.json"), scenario.to_string()).unwrap();
        Rig { env }
    }

    fn cmd(&self, extra: &[&str]) -> Command {
        let mut c = self.env.bin();
        c.args([
            "run",
            "s.toml",
            "--out",
            "out",
            "--meter",
            "nvml",
            "--gpus",
            "all",
            "--device",
            "cpu",
            "--idle-seconds",
            "0.2",
            "--data-dir",
        ])
        .arg(&self.env.data)
        .arg("--nvml-lib")
        .arg(self.env.path("gpu/libnvidia-ml.so.1"))
        .args(extra);
        c
    }

    /// The limit the "driver" holds now (700 W when nothing was ever set).
    fn limit_w(&self) -> f64 {
        std::fs::read_to_string(self.env.path("gpu/driver-state.json"))
            .ok()
            .map_or(700.0, |t| {
                let v: Value = serde_json::from_str(&t).unwrap();
                v["gpus"][0]["power_limit_w"].as_f64().unwrap()
            })
    }

    fn run_dir(&self) -> PathBuf {
        let d = self.env.path("out/pl");
        std::fs::read_dir(&d)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path()
    }

    fn originals_state(&self) -> String {
        let t = std::fs::read_to_string(self.run_dir().join("gpu-settings-original.json")).unwrap();
        let v: Value = serde_json::from_str(&t).unwrap();
        v["state"].as_str().unwrap().to_string()
    }
}

const SUITE: &str = r#"
name = "pl"
[defaults]
seeds = [1]
epochs = 2
max_eval_samples = 100
[[workload]]
name = "mlp"
hidden = [256, 128]
[[variant]]
name = "cap"
batch_size = 16
gpu_power_limits_w = [300, 500]
"#;

#[test]
fn limits_are_applied_read_back_recorded_followed_and_restored() {
    // A board that would draw 684 W flat: the cap is what it draws.
    // (A continuous counter, so short windows are exact.)
    let rig = Rig::with_gpu(
        SUITE,
        true,
        json!({"power": {"kind": "constant", "watts": 684.0}, "counter_update_ms": 0.0}),
    );
    let o = rig.cmd(&["--allow-gpu-settings"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(rig.limit_w(), 700.0, "restored after the run");
    assert_eq!(rig.originals_state(), "restored");
    let run = joulebench::analysis::Run::load(&rig.run_dir()).unwrap();
    let names: Vec<&str> = run.records.iter().map(|r| r.key.variant.as_str()).collect();
    assert_eq!(names, ["cap-p300", "cap-p500"]);
    let mut watts = Vec::new();
    for (r, w) in run.records.iter().zip([300.0, 500.0]) {
        let g = r.gpu_settings.as_ref().expect("read back");
        assert_eq!(g.requested_power_limit_w, Some(w as u32));
        assert_eq!(g.enforced_power_limit_w, [w]);
        assert_eq!(g.original_power_limit_w, [700.0]);
        let t = r.training.as_ref().unwrap();
        let gpu = t.domains.iter().find(|d| d.domain == "gpu:0").unwrap();
        let avg = gpu.joules.0 / t.seconds.0;
        // Within the counter's 100 ms steps over a training window of a second or more.
        assert!(
            (avg - w).abs() <= 0.1 * w,
            "{} drew {avg} W under a {w} W cap",
            r.key
        );
        watts.push(avg);
    }
    assert!(watts[0] < watts[1], "{watts:?}");
    let md = std::fs::read_to_string(rig.run_dir().join("report.md")).unwrap();
    assert!(
        md.contains("## Power limit x batch size") && md.contains("- eta = 1: mlp is cheapest"),
        "{md}"
    );
    // A run without power settings changes nothing and records none.
    let plain = Rig::new(
        &SUITE.replace("gpu_power_limits_w = [300, 500]\n", ""),
        true,
    );
    let o = plain.cmd(&[]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(!plain.run_dir().join("gpu-settings-original.json").exists());
}

#[test]
fn requests_are_refused_without_the_flag_out_of_range_or_without_permission() {
    let rig = Rig::new(SUITE, true);
    let o = rig.cmd(&[]).output().unwrap();
    assert!(
        !o.status.success()
            && text(&o).contains("pass --allow-gpu-settings")
            && text(&o).contains("mlp/cap-p300"),
        "{}",
        text(&o)
    );
    assert!(!rig.env.path("out").exists(), "nothing written");
    let low = Rig::new(&SUITE.replace("[300, 500]", "[100]"), true);
    let o = low.cmd(&["--allow-gpu-settings"]).output().unwrap();
    assert!(
        text(&o).contains("gpu_power_limit_w = 100 is outside") && text(&o).contains("200..=700 W"),
        "{}",
        text(&o)
    );
    assert!(!low.env.path("out").exists());
    let denied = Rig::new(SUITE, false);
    let o = denied.cmd(&["--allow-gpu-settings"]).output().unwrap();
    assert!(
        text(&o).contains("NVML_ERROR_NO_PERMISSION") && text(&o).contains("CAP_SYS_ADMIN"),
        "{}",
        text(&o)
    );
    assert_eq!(denied.limit_w(), 700.0);
    // The suite checks its own ranges.
    let bad = SuiteEnv::new(&SUITE.replace("[300, 500]", "[300, 0]"));
    let o = bad.bin().args(["validate", "s.toml"]).output().unwrap();
    assert!(
        text(&o).contains("variant[cap].gpu_power_limits_w") && text(&o).contains("1..=2000"),
        "{}",
        text(&o)
    );
}

#[test]
fn a_failed_trial_still_restores() {
    // The huge workload fails its memory preflight after the limit was set.
    let suite = SUITE.replace(
        "[[variant]]",
        "[[workload]]\nname = \"huge\"\nmodel = \"mlp\"\nhidden = [65536, 65536]\n[[variant]]",
    );
    let rig = Rig::new(&suite, true);
    let o = rig.cmd(&["--allow-gpu-settings"]).output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "failed trials exit 2: {}",
        text(&o)
    );
    let run = joulebench::analysis::Run::load(&rig.run_dir()).unwrap();
    let failed: Vec<_> = run
        .records
        .iter()
        .filter(|r| matches!(r.status, joulebench::record::TrialStatus::Failed { .. }))
        .collect();
    assert_eq!(failed.len(), 2);
    assert!(failed.iter().all(|r| r.gpu_settings.is_some()));
    assert_eq!(
        (rig.limit_w(), rig.originals_state().as_str()),
        (700.0, "restored")
    );
}

const LONG: &str = r#"
name = "pl"
[defaults]
seeds = [1, 2, 3]
epochs = 8
max_eval_samples = 100
[[workload]]
name = "mlp"
hidden = [256, 128]
[[variant]]
name = "cap"
batch_size = 16
gpu_power_limit_w = 250
"#;

/// Waits until the run holds `n` records and the limit is changed (a trial in flight).
fn wait_mid_trial(rig: &Rig, n: usize) {
    let t = Instant::now();
    loop {
        assert!(t.elapsed() < Duration::from_secs(120), "no trial in flight");
        let recs = std::fs::read_dir(rig.env.path("out/pl"))
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| std::fs::read_to_string(e.ok()?.path().join("trials.jsonl")).ok())
            .map_or(0, |s| s.lines().count());
        if recs >= n && rig.limit_w() == 250.0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sigterm_restores_before_exiting() {
    let rig = Rig::new(LONG, true);
    let child = rig
        .cmd(&["--allow-gpu-settings"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_mid_trial(&rig, 1);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(143), "{}", text(&o));
    assert_eq!(
        (rig.limit_w(), rig.originals_state().as_str()),
        (700.0, "restored")
    );
}

#[test]
fn sigkill_leaves_the_limit_changed_and_resume_restores_it_first() {
    let rig = Rig::new(LONG, true);
    let mut child = rig
        .cmd(&["--allow-gpu-settings"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_mid_trial(&rig, 1);
    child.kill().unwrap(); // SIGKILL: nothing of joulebench runs
    child.wait().unwrap();
    assert_eq!(
        rig.limit_w(),
        250.0,
        "the driver keeps the limit a killed process set"
    );
    assert_eq!(rig.originals_state(), "changed");
    let run = rig.run_dir();
    let o = rig
        .cmd(&["--allow-gpu-settings", "--resume", run.to_str().unwrap()])
        .env("JOULEBENCH_LOG", "warn")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("restored the GPU settings a killed run left changed"),
        "{}",
        text(&o)
    );
    assert_eq!(
        (rig.limit_w(), rig.originals_state().as_str()),
        (700.0, "restored")
    );
    let r = joulebench::analysis::Run::load(&run).unwrap();
    assert_eq!(r.records.len(), 3);
    assert!(
        r.records
            .iter()
            .all(|x| x.gpu_settings.as_ref().unwrap().original_power_limit_w == [700.0])
    );
}

#[test]
fn locked_clocks_are_read_back_and_reset() {
    let rig = Rig::new(
        &SUITE.replace("gpu_power_limits_w = [300, 500]", "gpu_sm_clock_mhz = 1410"),
        true,
    );
    let o = rig.cmd(&["--allow-gpu-settings"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let run = joulebench::analysis::Run::load(&rig.run_dir()).unwrap();
    let g = run.records[0].gpu_settings.as_ref().unwrap();
    assert_eq!(
        (g.requested_sm_clock_mhz, g.sm_clock_mhz.as_slice()),
        (Some(1410), &[Some(1410)][..])
    );
    assert_eq!(g.enforced_power_limit_w, [700.0], "the limit untouched");
    let state: Value = serde_json::from_str(
        &std::fs::read_to_string(rig.env.path("gpu/driver-state.json")).unwrap(),
    )
    .unwrap();
    assert!(state["gpus"][0]["locked_clocks"].is_null(), "{state}");
    // A clock the GPU does not support: NVML's refusal, named.
    let bad = Rig::new(
        &SUITE.replace("gpu_power_limits_w = [300, 500]", "gpu_sm_clock_mhz = 5000"),
        true,
    );
    let o = bad.cmd(&["--allow-gpu-settings"]).output().unwrap();
    assert!(
        text(&o).contains("lock the SM clock at 5000 MHz") && text(&o).contains("INVALID_ARGUMENT"),
        "{}",
        text(&o)
    );
    assert_eq!(bad.limit_w(), 700.0);
}
