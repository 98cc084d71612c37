//! A sharded suite on a real Slurm (`scripts/slurm-local.sh` starts a
//! single-node one; `.ci/run` does so and sets JOULEBENCH_REQUIRE_SLURM=1).
//!
//! `joulebench slurm --submit` sends a 4-task array; while it runs, task 1 is
//! requeued with `scontrol requeue` (Slurm SIGTERMs it mid-trial) and task 2
//! gets the time-limit warning (`scancel --batch --signal=USR1`, which the
//! script passes to joulebench before requeueing itself). Both come back
//! about 120 s later (Slurm's requeue delay) and resume their own files.
//! Then every planned trial must be present exactly once, with its array
//! task id, and `status` and `report` must read the merged run.
//!
//! Without a Slurm cluster the test skips, unless JOULEBENCH_REQUIRE_SLURM=1.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const SUITE: &str = r#"
name = "slurm-ci"
[defaults]
seeds = [1, 2, 3, 4]
epochs = 30
max_train_samples = 600
max_eval_samples = 100
[[workload]]
name = "mlp"
hidden = [256, 128]
[[variant]]
name = "b16"
batch_size = 16
[[variant]]
name = "b32"
batch_size = 32
"#;

fn slurm_up() -> bool {
    let up = Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .is_ok_and(|o| {
            o.status.success() && {
                let t = String::from_utf8_lossy(&o.stdout);
                t.contains("idle") || t.contains("mix") || t.contains("alloc")
            }
        });
    if !up {
        if std::env::var("JOULEBENCH_REQUIRE_SLURM").is_ok_and(|v| v == "1") {
            panic!(
                "JOULEBENCH_REQUIRE_SLURM=1 but no Slurm node answers sinfo: run scripts/slurm-local.sh first"
            );
        }
        eprintln!("skipping: no Slurm cluster (scripts/slurm-local.sh starts one)");
    }
    up
}

fn sh(cmd: &str, args: &[&str]) -> String {
    let o = Command::new(cmd).args(args).output().unwrap();
    assert!(
        o.status.success(),
        "{cmd} {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn lines(p: &Path) -> usize {
    std::fs::read_to_string(p).map_or(0, |s| s.lines().count())
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let t = Instant::now();
    while !done() {
        assert!(
            t.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("[{:>6.1} s] {what}", t.elapsed().as_secs_f64());
}

/// Cancels the job if the test fails half-way.
struct Job(String);
impl Drop for Job {
    fn drop(&mut self) {
        let _ = Command::new("scancel").arg(&self.0).status();
    }
}

#[test]
fn a_four_shard_array_survives_a_requeue_and_a_time_limit_signal() {
    if !slurm_up() {
        return;
    }
    let start = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let data = common::fixture_dataset(dir.path());
    std::fs::write(dir.path().join("s.toml"), SUITE).unwrap();
    let run: PathBuf = dir.path().join("run");
    let out = Command::new(env!("CARGO_BIN_EXE_joulebench"))
        .current_dir(dir.path())
        .args(["slurm", "s.toml", "--run-dir"])
        .arg(&run)
        .args([
            "--shards",
            "4",
            "--max-parallel",
            "4",
            "--cpus-per-task",
            "1",
            "--time",
            "10",
            "--meter",
            "estimate",
            "--idle-seconds",
            "0",
            "--region",
            "GB",
            "--pue",
            "1.3",
            "--data-dir",
        ])
        .arg(&data)
        .arg("--submit")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let job = text
        .lines()
        .find_map(|l| l.strip_prefix("submitted: job "))
        .expect("a job id")
        .trim()
        .to_string();
    let guard = Job(job.clone());
    let file = |k: u32| joulebench::runfolder::sharded::shard_dir(&run, k).join("trials.jsonl");

    // Task 1: requeued by the scheduler in the middle of its second trial.
    wait_for("task 1's first record", Duration::from_secs(180), || {
        lines(&file(1)) >= 1
    });
    sh("scontrol", &["requeue", &format!("{job}_1")]);
    // Task 2: the time-limit warning the script forwards.
    wait_for("task 2's first record", Duration::from_secs(180), || {
        lines(&file(2)) >= 1
    });
    sh(
        "scancel",
        &["--batch", "--signal=USR1", &format!("{job}_2")],
    );
    let requeued_at = Instant::now();
    wait_for(
        "the whole array to leave the queue",
        Duration::from_secs(360),
        || sh("squeue", &["-h", "-j", &job]).trim().is_empty(),
    );
    eprintln!(
        "array done {:.0} s after the requeues, {:.0} s after submission",
        requeued_at.elapsed().as_secs_f64(),
        start.elapsed().as_secs_f64()
    );
    drop(guard);

    // Every planned trial exactly once, in its own task's file.
    let suite = joulebench::suite::Suite::parse(&dir.path().join("s.toml"), SUITE).unwrap();
    let plan = suite.plan().unwrap();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for k in 0..4u32 {
        let (recs, _, torn) = joulebench::runfolder::store::read_records(&file(k)).unwrap();
        assert_eq!(torn, 0);
        for r in &recs {
            *seen.entry(r.trial_id.clone()).or_default() += 1;
            assert_eq!(r.trial_index % 4, k as usize);
            let p = r.placement.as_ref().unwrap();
            assert_eq!(p.array_job_id.as_deref(), Some(job.as_str()));
            assert_eq!(p.array_task_id, Some(k));
            assert_eq!(p.shard_source.as_deref(), Some("slurm-array"));
            assert_eq!(r.status, joulebench::record::TrialStatus::Completed);
            // The impact flags reach every array task.
            let imp = &r.impact.as_ref().unwrap().settings;
            assert_eq!((imp.region.code.as_str(), imp.pue), ("GBR", 1.3));
        }
        let restarts: Vec<u32> = recs
            .iter()
            .map(|r| r.placement.as_ref().unwrap().restart_count)
            .collect();
        eprintln!(
            "task {k}: {} record(s), restart counts {restarts:?}",
            recs.len()
        );
        if k == 1 || k == 2 {
            assert_eq!(
                restarts,
                [0, 1],
                "task {k}: one trial before the requeue, one after"
            );
        }
    }
    assert_eq!(
        seen.len(),
        plan.trials.len(),
        "every planned trial recorded"
    );
    assert!(
        seen.values().all(|&n| n == 1),
        "each exactly once: {seen:?}"
    );
    for t in &plan.trials {
        assert!(seen.contains_key(&t.id()), "{} missing", t.key);
    }
    let log = |k: u32| {
        std::fs::read_to_string(run.join("shards").join(format!("slurm-{job}_{k}.out")))
            .unwrap_or_default()
    };
    assert!(
        log(1).contains("interrupted by SIGTERM"),
        "task 1 log:\n{}",
        log(1)
    );
    assert!(
        log(2).contains("interrupted by SIGUSR1") && log(2).contains("requeueing"),
        "task 2 log:\n{}",
        log(2)
    );

    let bin = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_joulebench"));
        c.current_dir(dir.path());
        c
    };
    let st = bin().arg("status").arg(&run).output().unwrap();
    let st = String::from_utf8_lossy(&st.stdout).into_owned();
    eprintln!("{st}");
    assert!(st.contains("8 of 8 planned trial(s) recorded"), "{st}");
    assert_eq!(st.matches(" finished").count(), 4, "{st}");
    let rep = bin().arg("report").arg(&run).output().unwrap();
    assert!(
        rep.status.success(),
        "{}",
        String::from_utf8_lossy(&rep.stderr)
    );
    let md = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(
        md.contains("a sharded run: 4 shard folder(s) merged")
            && md.contains("2 trial(s) recorded after a requeue"),
        "{md}"
    );
    eprintln!("slurm test: {:.0} s in all", start.elapsed().as_secs_f64());
}
