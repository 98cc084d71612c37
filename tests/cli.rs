//! The binary end to end: errors at the edge, and a run killed with SIGKILL
//! part-way that `--resume` finishes without repeating or losing a trial.

mod common;

use joulebench::runfolder::store::read_records;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_joulebench"));
    c.env_remove("JOULEBENCH_FASHION_MNIST");
    c
}

const SUITE: &str = r#"
name = "killme"
[defaults]
seeds = [1, 2, 3]
epochs = 2
max_eval_samples = 300
[[workload]]
name = "mlp"
[[variant]]
name = "b64"
batch_size = 64
[[variant]]
name = "b16"
batch_size = 16
"#;

fn run_dir(out: &Path) -> Option<PathBuf> {
    std::fs::read_dir(out.join("killme"))
        .ok()?
        .next()?
        .ok()
        .map(|e| e.path())
}

fn lines(p: &Path) -> usize {
    std::fs::read(p).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
}

#[test]
fn sigkill_part_way_then_resume_runs_every_trial_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::fixture_dataset(dir.path());
    let suite = dir.path().join("killme.toml");
    std::fs::write(&suite, SUITE).unwrap();
    let out = dir.path().join("results");
    let args = |c: &mut Command| {
        c.arg("run")
            .arg(&suite)
            .arg("--out")
            .arg(&out)
            .arg("--data-dir")
            .arg(&data)
            .arg("--meter")
            .arg("fake");
    };
    let mut c = bin();
    args(&mut c);
    let mut child = c
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until two trials are on disk, then kill -9.
    let t0 = Instant::now();
    let trials = loop {
        if let Some(r) = run_dir(&out) {
            let t = r.join("trials.jsonl");
            if lines(&t) >= 2 {
                break t;
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("run ended before it could be killed: {status}");
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no trials written in 120 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    let before = std::fs::read(&trials).unwrap();
    let n_before = lines(&trials);
    assert!(n_before < 6, "the run finished before the kill");
    // Also leave a half-written line, as a kill during the append would.
    let cut = before.len()
        - before
            .iter()
            .rev()
            .skip(1)
            .position(|&b| b == b'\n')
            .unwrap()
        - 1;
    let mut torn = before[..].to_vec();
    torn.extend_from_slice(&before[cut..before.len() - 20]);
    std::fs::write(&trials, &torn).unwrap();

    let run = trials.parent().unwrap().to_path_buf();
    let mut c = bin();
    args(&mut c);
    let o = c.arg("--resume").arg(&run).output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "resume failed:\n{stdout}\n{stderr}");
    assert!(
        stderr.contains("discarded a half-written last record"),
        "{stderr}"
    );
    assert!(
        stdout.contains(&format!(
            "{} trial(s) run, {n_before} already present",
            6 - n_before
        )),
        "{stdout}"
    );
    let after = std::fs::read(&trials).unwrap();
    assert_eq!(
        &after[..before.len()],
        &before[..],
        "earlier records must be unchanged"
    );
    let (recs, _, discarded) = read_records(&trials).unwrap();
    assert_eq!(discarded, 0);
    let mut keys: Vec<String> = recs.iter().map(|r| r.key.to_string()).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "mlp/b16/s1/r0",
            "mlp/b16/s2/r0",
            "mlp/b16/s3/r0",
            "mlp/b64/s1/r0",
            "mlp/b64/s2/r0",
            "mlp/b64/s3/r0"
        ]
    );
    assert!(recs.iter().all(|r| r.test_accuracy().is_some()));
    // Only one run folder: resume wrote into the old one.
    assert_eq!(std::fs::read_dir(out.join("killme")).unwrap().count(), 1);
}

fn fails_with(args: &[&str], want: &str) {
    let o = bin().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(want), "want {want:?} in:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn bad_input_gives_clear_errors_and_no_run_folder() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("s.toml");
    std::fs::write(
        &suite,
        "name = \"s\"\n[[workload]]\nname = \"mlp\"\nbatch_size = 0\n",
    )
    .unwrap();
    let s = suite.to_str().unwrap();
    fails_with(
        &["validate", s],
        "field `workload[mlp].batch_size` = 0 is not allowed",
    );
    std::fs::write(&suite, "name = \"s\"\n[[workload]]\nname = \"mlp\"\n").unwrap();
    let out = dir.path().join("out");
    let o = out.to_str().unwrap();
    fails_with(
        &["run", s, "--out", o, "--data-dir", "/nonexistent"],
        "Fashion-MNIST not found in /nonexistent",
    );
    fails_with(
        &["run", s, "--out", o, "--device", "cuda:0"],
        "built without CUDA",
    );
    fails_with(
        &["run", s, "--out", o, "--device", "tpu"],
        "allowed are `auto`, `cpu` and `cuda:N`",
    );
    fails_with(
        &["run", s, "--out", o, "--meter", "nvml9"],
        "invalid value 'nvml9' for '--meter <KIND>': unknown meter `nvml9`; known: auto, nvml, rapl, estimate, fake",
    );
    fails_with(
        &["run", s, "--out", o, "--variant", "x"],
        "unknown variant `x`; known: baseline",
    );
    fails_with(
        &["run", s, "--resume", dir.path().to_str().unwrap()],
        "is not a run folder",
    );
    assert!(!out.exists(), "a failed start must not leave a run folder");
}

#[test]
fn validate_and_list_describe_the_plan_and_the_catalogue() {
    let o = bin()
        .args([
            "validate",
            concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/quick.toml"),
        ])
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    assert!(s.contains("= 24 trials"), "{s}");
    assert!(s.contains("adaptive seeds: 3 to 6 from seed 1"), "{s}");
    assert!(s.contains("mlp/b128/s1/r0"), "{s}");
    let o = bin().arg("list").output().unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        s.contains("mlp")
            && s.contains("cnn")
            && s.contains("estimate")
            && s.contains("batch_size")
    );
    // Every setting a suite accepts is listed with its allowed values: the
    // technique and model-size knobs too, and the [meter]/[impact] keys.
    for key in joulebench::suite::SETTINGS.iter().map(|d| d.key).chain([
        "cooldown_temperature_c",
        "poll_interval_ms",
        "dram_watts_per_gb",
        "wue_onsite",
        "seeds",
        "repeats",
    ]) {
        assert!(s.contains(&format!("  {key} ")), "`list` lacks {key}:\n{s}");
    }
    for allowed in [
        "q8_0 | q4_0 | q4k",
        "one-shot | gradual",
        "global | layer",
        "unstructured | structured",
        "mlp | cnn | separable-cnn | standard-cnn",
        "val_loss | val_accuracy",
        "f32 | bf16 | f16 | bf16-pure | tf32",
    ] {
        assert!(s.contains(allowed), "`list` lacks {allowed}:\n{s}");
    }
}
