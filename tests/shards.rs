//! Sharded runs without a scheduler: stable trial ids, `--shard` and the
//! Slurm/Kubernetes environment, shards racing to create one run folder, a
//! shard killed with SIGKILL and restarted (each trial once), mismatched
//! shards refused, merging (duplicates, conflicts, partial runs), `status`,
//! and the sbatch script `joulebench slurm` writes. The real-Slurm test is in
//! tests/slurm.rs.

mod common;

use joulebench::analysis::Run;
use joulebench::runfolder::sharded;
use joulebench::suite::Suite;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SUITE: &str = r#"
name = "sh"
[defaults]
seeds = [1, 2, 3]
epochs = 1
max_eval_samples = 100
[[workload]]
name = "mlp"
hidden = [16]
[[variant]]
name = "b64"
batch_size = 64
[[variant]]
name = "b128"
batch_size = 128
"#;

use common::{SuiteEnv as Env, text};

trait RunArgs {
    fn run(&self, args: &[&str]) -> Command;
}

impl RunArgs for Env {
    /// `joulebench run s.toml --meter fake --idle-seconds 0 --data-dir <fixture> ARGS`.
    fn run(&self, args: &[&str]) -> Command {
        let mut c = self.run_cmd("0");
        c.args(args);
        c
    }
}

fn ok(c: &mut Command) -> String {
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    text(&o)
}

fn ids_in(run: &Path) -> Vec<String> {
    let mut ids: Vec<String> = Run::load(run)
        .unwrap()
        .records
        .iter()
        .map(|r| r.trial_id.clone())
        .collect();
    ids.sort();
    ids
}

fn planned_ids(suite: &str) -> Vec<String> {
    let s = Suite::parse(Path::new("s.toml"), suite).unwrap();
    let mut ids: Vec<String> = s.plan().unwrap().trials.iter().map(|t| t.id()).collect();
    ids.sort();
    ids
}

#[test]
fn trial_ids_are_stable_and_change_with_the_config() {
    let a = planned_ids(SUITE);
    assert_eq!(a, planned_ids(SUITE), "same suite, same ids");
    assert_eq!(a.len(), 6);
    let mut d = a.clone();
    d.dedup();
    assert_eq!(d.len(), 6, "ids are distinct");
    assert!(
        a.iter()
            .all(|i| i.len() == 16 && i.bytes().all(|b| b.is_ascii_hexdigit()))
    );
    // A changed setting changes every id; filtering keeps the ids it keeps.
    let changed = planned_ids(&SUITE.replace("epochs = 1", "epochs = 2"));
    assert!(changed.iter().all(|i| !a.contains(i)));
    let mut s = Suite::parse(Path::new("s.toml"), SUITE).unwrap();
    s.select(&[], &["b128".into()]).unwrap();
    assert!(s.plan().unwrap().trials.iter().all(|t| a.contains(&t.id())));
}

#[test]
fn two_shards_race_into_one_folder_and_merge_into_one_run() {
    let env = Env::new(SUITE);
    let children: Vec<_> = (0..3)
        .map(|k| {
            env.run(&["--shard", &format!("{k}/3"), "--run-dir", "r"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", text(&o));
        assert!(
            text(&o).contains("when every shard has ended"),
            "{}",
            text(&o)
        );
    }
    let run = env.path("r");
    assert_eq!(ids_in(&run), planned_ids(SUITE), "every planned trial once");
    // Shard k holds the trials whose index mod 3 is k, with its placement.
    for k in 0..3u32 {
        let (recs, _, _) = joulebench::runfolder::store::read_records(
            &sharded::shard_dir(&run, k).join("trials.jsonl"),
        )
        .unwrap();
        assert_eq!(recs.len(), 2);
        for r in &recs {
            assert_eq!(r.trial_index % 3, k as usize);
            let p = r.placement.as_ref().unwrap();
            assert_eq!(p.shard.unwrap().to_string(), format!("{k}/3"));
            assert_eq!(p.shard_source.as_deref(), Some("--shard"));
            assert!(!p.hostname.is_empty() && p.pid > 0);
        }
    }
    let st = ok(env.bin().args(["status", "r"]));
    assert_eq!(st.matches(" finished").count(), 3, "{st}");
    assert!(st.contains("6 of 6 planned trial(s) recorded"), "{st}");
    ok(env.bin().args(["report", "r"]));
    let md = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(
        md.contains("a sharded run: 3 shard folder(s) merged"),
        "{md}"
    );
    assert!(!md.contains("Partial run"), "{md}");
    let csv = std::fs::read_to_string(run.join("trials.csv")).unwrap();
    assert_eq!(csv.lines().count(), 7, "{csv}");
    // compare reads sharded runs too.
    ok(env.bin().args(["compare", "r", "r"]));
    // A shard started again finds its trials done and runs nothing.
    let o = ok(&mut env.run(&["--shard", "1/3", "--run-dir", "r"]));
    assert!(o.contains("0 trial(s) run, 2 already present"), "{o}");
}

#[test]
fn slurm_and_kubernetes_variables_pick_the_shard_and_the_folder() {
    let env = Env::new(SUITE);
    let o = ok(env
        .run(&[])
        .env("SLURM_ARRAY_TASK_ID", "5")
        .env("SLURM_ARRAY_TASK_MIN", "4")
        .env("SLURM_ARRAY_TASK_COUNT", "2")
        .env("SLURM_ARRAY_JOB_ID", "4242")
        .env("SLURM_JOB_ID", "4244")
        .env("SLURM_RESTART_COUNT", "2")
        .env("CUDA_VISIBLE_DEVICES", "0"));
    assert!(o.contains("shard 1/2 (slurm-array) done"), "{o}");
    let run = env.path("out/sh/slurm-4242");
    let (recs, _, _) = joulebench::runfolder::store::read_records(
        &sharded::shard_dir(&run, 1).join("trials.jsonl"),
    )
    .unwrap();
    assert_eq!(recs.len(), 3);
    let p = recs[0].placement.as_ref().unwrap();
    assert_eq!(
        (
            p.array_job_id.as_deref(),
            p.array_task_id,
            p.job_id.as_deref(),
            p.restart_count
        ),
        (Some("4242"), Some(5), Some("4244"), 2)
    );
    assert_eq!(p.cuda_visible_devices.as_deref(), Some("0"));
    // Kubernetes: the index, the count, and the folder from the environment.
    let o = ok(env
        .run(&[])
        .env("JOB_COMPLETION_INDEX", "0")
        .env("JOULEBENCH_SHARDS", "2")
        .env("JOULEBENCH_RUN_DIR", run.to_str().unwrap()));
    assert!(o.contains("shard 0/2 (k8s-indexed-job) done"), "{o}");
    assert_eq!(ids_in(&run), planned_ids(SUITE));
    // Missing pieces are named.
    let o = env
        .run(&[])
        .env("JOB_COMPLETION_INDEX", "0")
        .output()
        .unwrap();
    assert!(
        !o.status.success() && text(&o).contains("JOULEBENCH_SHARDS is not"),
        "{}",
        text(&o)
    );
    let o = env.run(&["--shard", "0/2"]).output().unwrap();
    assert!(
        !o.status.success() && text(&o).contains("--run-dir"),
        "{}",
        text(&o)
    );
    let o = env
        .run(&["--shard", "2/2", "--run-dir", "x"])
        .output()
        .unwrap();
    assert!(
        text(&o).contains("--shard \"2/2\"") && text(&o).contains("0..=1"),
        "{}",
        text(&o)
    );
    let o = env
        .run(&["--shard", "0/2", "--run-dir", "x", "--resume", "y"])
        .output()
        .unwrap();
    assert!(
        text(&o).contains("--resume and sharding do not mix"),
        "{}",
        text(&o)
    );
    assert!(!env.path("x").exists() && !env.path("y").exists());
}

#[test]
fn shards_that_disagree_with_the_run_are_refused() {
    let env = Env::new(SUITE);
    ok(&mut env.run(&["--shard", "0/2", "--run-dir", "r"]));
    let o = env
        .run(&["--shard", "1/3", "--run-dir", "r"])
        .output()
        .unwrap();
    assert!(
        !o.status.success()
            && text(&o)
                .contains("sharding.json: field `count` is 2, but this shard was started with 3"),
        "{}",
        text(&o)
    );
    let o = env
        .run(&["--shard", "1/2", "--run-dir", "r", "--variant", "b64"])
        .output()
        .unwrap();
    assert!(text(&o).contains("field `filters`"), "{}", text(&o));
    std::fs::write(
        env.path("s.toml"),
        SUITE.replace("epochs = 1", "epochs = 2"),
    )
    .unwrap();
    let o = env
        .run(&["--shard", "1/2", "--run-dir", "r"])
        .output()
        .unwrap();
    assert!(
        text(&o).contains("differs from the one this run started with"),
        "{}",
        text(&o)
    );
    assert!(
        !sharded::shard_dir(&env.path("r"), 1).exists(),
        "nothing written for a refused shard"
    );
}

#[test]
fn a_running_shard_holds_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    let suite = Suite::parse(&dir.path().join("s.toml"), SUITE).unwrap();
    let m = joulebench::runfolder::manifest::Manifest::new(
        &suite,
        "cpu",
        joulebench::meter::MeterInfo {
            name: "fake".into(),
            domains: vec![],
            update_period: None,
            cpu: None,
        },
        dir.path(),
    );
    let run = dir.path().join("r");
    let shard = joulebench::record::Shard { index: 0, count: 2 };
    let held = sharded::join(&run, &suite, shard, &m).unwrap();
    let e = sharded::join(&run, &suite, shard, &m)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("is held by another running process"), "{e}");
    assert!(e.contains("(no heartbeat yet)"), "{e}");
    // With a heartbeat, the message names the holder.
    let hb = sharded::Heartbeat {
        state: "running".into(),
        hostname: "node7".into(),
        pid: 4242,
        ..Default::default()
    };
    std::fs::write(
        sharded::shard_dir(&run, 0).join(sharded::HEARTBEAT_FILE),
        serde_json::to_vec(&hb).unwrap(),
    )
    .unwrap();
    let e = sharded::join(&run, &suite, shard, &m)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("(pid 4242 on node7, running)"), "{e}");
    // The other shard is free, and the lock goes with the process's handle.
    sharded::join(
        &run,
        &suite,
        joulebench::record::Shard { index: 1, count: 2 },
        &m,
    )
    .unwrap();
    drop(held);
    sharded::join(&run, &suite, shard, &m).unwrap();
}

const SLOW: &str = r#"
name = "slow"
[defaults]
seeds = [1, 2, 3, 4]
epochs = 8
max_eval_samples = 100
[[workload]]
name = "mlp"
hidden = [256, 128]
[[variant]]
name = "b16"
batch_size = 16
"#;

#[test]
fn a_shard_killed_with_sigkill_resumes_its_own_file_exactly_once() {
    let env = Env::new(SLOW);
    let trials = sharded::shard_dir(&env.path("r"), 1).join("trials.jsonl");
    let mut child = env
        .run(&["--shard", "1/2", "--run-dir", "r"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(120)
        && std::fs::read_to_string(&trials).map_or(0, |s| s.lines().count()) < 1
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL: no handler runs
    child.wait().unwrap();
    let before = std::fs::read_to_string(&trials).unwrap().lines().count();
    assert_eq!(before, 1, "killed during its second trial");
    // The heartbeat still says running; status calls it stale only after a minute.
    let st = ok(env.bin().args(["status", "r"]));
    assert!(st.contains("1 of 4 planned trial(s) recorded"), "{st}");
    // A half-written line (the kill landing mid-append) is cut off on restart.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&trials)
        .unwrap();
    std::io::Write::write_all(&mut f, b"{\"schema_version\":1,\"suite\":").unwrap();
    drop(f);
    let o = ok(env
        .run(&["--shard", "1/2", "--run-dir", "r"])
        .env("SLURM_RESTART_COUNT", "1"));
    assert!(o.contains("1 trial(s) run, 1 already present"), "{o}");
    let (recs, _, torn) = joulebench::runfolder::store::read_records(&trials).unwrap();
    assert_eq!((recs.len(), torn), (2, 0));
    assert_eq!(
        recs.iter()
            .map(|r| r.placement.as_ref().unwrap().restart_count)
            .collect::<Vec<_>>(),
        [0, 1]
    );
    // Shard 0 never ran: the merged run is partial and says what it lacks.
    let run = Run::load(&env.path("r")).unwrap();
    assert_eq!(run.records.len(), 2);
    let missing: Vec<String> = run.missing.iter().map(|k| k.to_string()).collect();
    assert_eq!(missing, ["mlp/b16/s1/r0", "mlp/b16/s3/r0"]);
    ok(env.bin().args(["report", "r"]));
    let md = std::fs::read_to_string(env.path("r/report.md")).unwrap();
    assert!(
        md.contains("Partial run: 2 of 4 planned trials recorded. Missing: `mlp/b16/s1/r0`, `mlp/b16/s3/r0`."),
        "{md}"
    );
    let st = ok(env.bin().args(["status", "r"]));
    assert!(
        st.contains("not started") && st.contains("missing: mlp/b16/s1/r0"),
        "{st}"
    );
}

#[test]
fn a_trial_recorded_twice_is_merged_once_or_refused_when_results_differ() {
    let env = Env::new(SUITE);
    ok(&mut env.run(&["--shard", "0/2", "--run-dir", "r"]));
    ok(&mut env.run(&["--shard", "1/2", "--run-dir", "r"]));
    let run = env.path("r");
    let f0 = sharded::shard_dir(&run, 0).join("trials.jsonl");
    let f1 = sharded::shard_dir(&run, 1).join("trials.jsonl");
    let first = std::fs::read_to_string(&f0)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    let original = std::fs::read_to_string(&f1).unwrap();
    // The same record copied (a different placement only): merged once.
    // (Edited as text: a JSON round trip may move a float's last digit.)
    let at = first.find("\"pid\":").unwrap() + 6;
    let end = at + first[at..].find(',').unwrap();
    let copy = format!("{}1{}", &first[..at], &first[end..]);
    assert_ne!(copy, first);
    std::fs::write(&f1, format!("{original}{copy}\n")).unwrap();
    let r = Run::load(&run).unwrap();
    assert_eq!(r.records.len(), 6);
    // The same trial with other results: an error naming both files.
    let other = copy.replacen("\"finished_at\":\"", "\"finished_at\":\"2000-", 1);
    std::fs::write(&f1, format!("{original}{other}\n")).unwrap();
    let e = Run::load(&run).err().unwrap().to_string();
    assert!(
        e.contains("recorded twice with different results")
            && e.contains(f0.to_str().unwrap())
            && e.contains(f1.to_str().unwrap()),
        "{e}"
    );
    let o = env.bin().args(["report", "r"]).output().unwrap();
    assert!(
        !o.status.success() && text(&o).contains("mlp/b64/s1/r0"),
        "{}",
        text(&o)
    );
}

#[test]
fn slurm_writes_a_checked_array_script_into_a_prepared_run_folder() {
    let env = Env::new(SUITE);
    let o = ok(env.bin().args([
        "slurm",
        "s.toml",
        "--run-dir",
        "runs/a",
        "--shards",
        "3",
        "--max-parallel",
        "2",
        "--partition",
        "gpu",
        "--gpus-per-task",
        "1",
        "--time",
        "0-01:30:00",
        "--exclusive",
        "--meter",
        "estimate",
        "--variant",
        "b64",
    ]));
    let run = std::path::absolute(env.path("runs/a")).unwrap();
    assert!(o.contains("3 trial(s) in 3 array task(s)"), "{o}");
    let script = std::fs::read_to_string(run.join("slurm.sbatch")).unwrap();
    for want in [
        "#SBATCH --array=0-2%2",
        "#SBATCH --partition=gpu",
        "#SBATCH --gpus-per-task=1",
        "#SBATCH --time=0-01:30:00",
        "#SBATCH --exclusive",
        "#SBATCH --requeue",
        "#SBATCH --signal=B:USR1@120",
        "--meter estimate --variant b64",
        &format!("--run-dir {}", run.display()),
    ] {
        assert!(script.contains(want), "{want}\n{script}");
    }
    let sh = Command::new("bash")
        .arg("-n")
        .arg(run.join("slurm.sbatch"))
        .output()
        .unwrap();
    assert!(sh.status.success(), "bash -n: {}", text(&sh));
    assert!(run.join("suite.toml").is_file() && run.join("sharding.json").is_file());
    // Its tasks are shards of that folder: a task run by hand joins it.
    ok(&mut env.run(&["--shard", "2/3", "--run-dir", "runs/a", "--variant", "b64"]));
    // Bad values are refused before anything is written.
    for (args, want) in [
        (vec!["--shards", "9"], "--shards \"9\": 1..=6"),
        (vec!["--time", "2 hours"], "--time \"2 hours\""),
        (vec!["--partition", "a;b"], "--partition \"a;b\""),
        (vec!["--max-parallel", "0"], "--max-parallel \"0\""),
        (vec!["--run-dir", "a b"], "--run-dir"),
    ] {
        let o = env
            .bin()
            .args(["slurm", "s.toml", "--out", "o2"])
            .args(&args)
            .output()
            .unwrap();
        assert!(
            !o.status.success() && text(&o).contains(want),
            "{args:?}: {}",
            text(&o)
        );
    }
    assert!(!env.path("o2").exists() && !env.path("a b").exists());
}

#[test]
fn reproduce_judges_a_claim_from_a_sharded_run() {
    let claim = r#"
name = "claim-macs"
baseline = "wide"
[claim]
id = "macs-test"
source = "a test"
statement = "a narrower MLP needs fewer MACs"
metric = "macs"
baseline = "mlp/wide"
treatment = "mlp/narrow"
expect = "lower"
published = "none"
[defaults]
seeds = [1, 2]
epochs = 1
max_eval_samples = 100
[[workload]]
name = "mlp"
model = "mlp"
[[variant]]
name = "wide"
hidden = [64]
[[variant]]
name = "narrow"
hidden = [16]
"#;
    let env = Env::new(claim);
    ok(&mut env.run(&["--shard", "0/2", "--run-dir", "r"]));
    ok(&mut env.run(&["--shard", "1/2", "--run-dir", "r"]));
    let o = ok(env.bin().args(["reproduce", "--out", "o", "--run", "r"]));
    assert!(
        o.contains("macs-test") && o.contains("reproduction.md"),
        "{o}"
    );
    let o = env
        .bin()
        .args(["reproduce", "--out", "o", "--run", "s.toml"])
        .output()
        .unwrap();
    assert!(
        !o.status.success() && text(&o).contains("not a run folder"),
        "{}",
        text(&o)
    );
}

#[test]
fn slurm_tasks_run_with_every_measurement_and_impact_setting_given() {
    // `joulebench slurm` forwards the meter and impact flags to its array
    // tasks: the generated script, run by bash as the two tasks Slurm would
    // start, records the region, PUE and water constants it was given.
    let env = Env::new(SUITE);
    let mut c = env.bin();
    c.args(["slurm", "s.toml", "--run-dir", "runs/m", "--shards", "2"])
        .args([
            "--meter",
            "fake",
            "--idle-seconds",
            "0",
            "--cooldown-seconds",
            "0",
        ])
        .args(["--region", "GB", "--intensity", "annual", "--pue", "1.3"])
        .args(["--wue", "0.4", "--water-offsite", "2.5", "--data-dir"])
        .arg(&env.data);
    ok(&mut c);
    let run = std::path::absolute(env.path("runs/m")).unwrap();
    let script = run.join("slurm.sbatch");
    let text_of = std::fs::read_to_string(&script).unwrap();
    assert!(
        text_of.contains("--region GB --pue 1.3 --wue 0.4 --water-offsite 2.5 --intensity annual"),
        "{text_of}"
    );
    for task in ["0", "1"] {
        let o = Command::new("bash")
            .arg(&script)
            .env("SLURM_ARRAY_JOB_ID", "4242")
            .env("SLURM_JOB_ID", format!("424{task}"))
            .env("SLURM_ARRAY_TASK_ID", task)
            .env("SLURM_ARRAY_TASK_COUNT", "2")
            .env("JOULEBENCH_LOG", "warn")
            .output()
            .unwrap();
        assert!(o.status.success(), "task {task}: {}", text(&o));
    }
    let merged = Run::load(&run).unwrap();
    assert_eq!(merged.records.len(), 6, "every planned trial once");
    for r in &merged.records {
        let s = &r.impact.as_ref().expect("impact").settings;
        assert_eq!(s.region.code, "GBR", "{}", r.key);
        assert_eq!(
            (s.pue, s.wue_onsite_l_per_kwh, s.water_offsite_l_per_kwh),
            (1.3, 0.4, 2.5)
        );
        assert_eq!(s.intensity, joulebench::impact::Intensity::Annual);
        assert_eq!(r.meter, "fake", "{}", r.key);
    }
}
