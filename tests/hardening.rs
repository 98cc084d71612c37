//! Bad input and interruptions, one test per class: names that would leave
//! the results folder, filtered runs and resume, compare's guards, checked
//! arithmetic, resource caps and the memory preflight, empty splits,
//! unchecked tables, echoed values, and SIGINT/SIGTERM.

mod common;

use joulebench::suite::Suite;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn parse(text: &str) -> Result<Suite, String> {
    Suite::parse(Path::new("exp/s.toml"), text).map_err(|e| e.to_string())
}

fn err(text: &str) -> String {
    parse(text).expect_err("must be rejected")
}

const W: &str = "[[workload]]\nname = \"mlp\"\n";

#[test]
fn names_must_be_single_ordinary_path_components() {
    for name in [".", "..", ".hidden", "a/b", "a\\\\b", "\\u0007", ""] {
        let e = err(&format!("name = \"{name}\"\n{W}"));
        assert!(
            e.contains("field `name`") && e.contains("not starting with '.'"),
            "{name}: {e}"
        );
    }
    let e = err("name = \"s\"\n[[workload]]\nname = \"..\"\nmodel = \"mlp\"\n");
    assert!(e.contains("workload[0].name"), "{e}");
    let e = err(&format!("name = \"s\"\n{W}[[variant]]\nname = \".\"\n"));
    assert!(e.contains("variant[0].name"), "{e}");
    // The longest allowed name is one component under the results root.
    let ok = parse(&format!("name = \"{}\"\n{W}", "a".repeat(64))).unwrap();
    let p = Path::new("/results").join(&ok.name);
    assert_eq!(p.parent(), Some(Path::new("/results")));
    // And the store refuses a name that is not, whoever built the suite.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("out");
    for bad in ["..", ".", "a/b", "/abs"] {
        let mut s = ok.clone();
        s.name = bad.into();
        let m = joulebench::runfolder::manifest::Manifest::new(&s, "cpu", meter_info(), dir.path());
        let e = joulebench::runfolder::store::RunDir::create(&root, &s, &m)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("would not stay under"), "{bad}: {e}");
    }
    assert!(!dir.path().join("s").exists() && std::fs::read_dir(dir.path()).unwrap().count() == 0);
}

fn meter_info() -> joulebench::meter::MeterInfo {
    joulebench::meter::MeterInfo {
        name: "fake".into(),
        domains: vec![],
        update_period: None,
        cpu: None,
    }
}

#[test]
fn multiplied_and_scaled_numbers_are_checked_after_resolution() {
    let e = err(&format!(
        "name = \"s\"\n{W}[[variant]]\nname = \"v\"\nbatch_size = 65536\naccumulation_steps = 65536\n"
    ));
    assert!(
        e.contains("variant[v].accumulation_steps") && e.contains("4294967295"),
        "{e}"
    );
    let e = err(&format!(
        "name = \"s\"\n[defaults]\nlearning_rate = 1.0\nlr_scaling = \"linear\"\n{W}[[variant]]\nname = \"v\"\nbatch_size = 4194304\n"
    ));
    assert!(
        e.contains("variant[v].learning_rate") && e.contains("must stay in (0, 10]"),
        "{e}"
    );
}

#[test]
fn plans_tables_and_generation_have_caps() {
    let t = Instant::now();
    let seeds: Vec<String> = (0..200_000).map(|i| i.to_string()).collect();
    let e = err(&format!(
        "name = \"s\"\n[defaults]\nseeds = [{}]\n{W}",
        seeds.join(",")
    ));
    assert!(e.contains("at most 100000 seeds"), "{e}");
    let seeds: Vec<String> = (0..5_000).map(|i| i.to_string()).collect();
    let variants: String = (0..100)
        .map(|i| format!("[[variant]]\nname = \"v{i}\"\n"))
        .collect();
    let e = err(&format!(
        "name = \"s\"\n[defaults]\nseeds = [{}]\nrepeats = 1000\n{W}{variants}",
        seeds.join(",")
    ));
    assert!(e.contains("a plan of at most 100000 trials"), "{e}");
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "caps answer fast: {:?}",
        t.elapsed()
    );
    let e = err(
        "name = \"s\"\n[[workload]]\nname = \"gpt\"\nmodel = \"char-transformer\"\ngenerate_tokens = 100000000\n",
    );
    assert!(
        e.contains("generate_tokens") && e.contains("1..=65536"),
        "{e}"
    );
    let sizes: Vec<String> = (1..=100).map(|i| i.to_string()).collect();
    let e = err(&format!(
        "name = \"s\"\n{W}[[variant]]\nname = \"v\"\nbatch_sizes = [{}]\n",
        sizes.join(",")
    ));
    assert!(e.contains("at most 64 batch sizes"), "{e}");
}

#[test]
fn every_table_is_checked_including_quick_and_claim() {
    let e = err(&format!("name = \"s\"\n{W}[quick]\nepoch = 1\n"));
    assert!(
        e.contains("field `quick.epoch`"),
        "a [quick] typo is caught without --quick: {e}"
    );
    let e = err(&format!("name = \"s\"\n{W}[quick]\nbatch_size = 0\n"));
    assert!(e.contains("field `quick.batch_size` = 0"), "{e}");
    let claim = |extra: &str| {
        format!(
            "name = \"s\"\n{W}[claim]\nid = \"c\"\nsource = \"x\"\nstatement = \"x\"\nmetric = \"macs\"\nbaseline = \"mlp/baseline\"\ntreatment = \"mlp/baseline\"\nexpect = \"within\"\npublished = \"x\"\n{extra}"
        )
    };
    let e = err(&claim("ratio_min = 2.0\nratio_max = 1.0\n"));
    assert!(
        e.contains("claim.ratio_min") && e.contains("must not exceed ratio_max"),
        "{e}"
    );
    let e = err(&claim(
        "ratio_min = 0.5\nratio_max = 1.0\ntarget_accuracy = 5.0\n",
    ));
    assert!(e.contains("claim.target_accuracy"), "{e}");
    let e = err(&claim("ratio_min = -1.0\nratio_max = 1.0\n"));
    assert!(
        e.contains("claim.ratio_min") && e.contains("finite number >= 0"),
        "{e}"
    );
    let e = err(&format!(
        "name = \"s\"\n[meter]\npoll_interval_ms = 0.7\n{W}"
    ));
    assert!(e.contains("meter.poll_interval_ms"), "{e}");
    let e = err(&format!("name = \"s\"\n[data]\nfashion_mnist = \"\"\n{W}"));
    assert!(e.contains("field `data.fashion_mnist` = \"\""), "{e}");
}

#[test]
fn records_and_manifests_of_unknown_versions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let run = common::fixture_run(
        dir.path(),
        0.8,
        0.0,
        joulebench::meter::Provenance::Estimated,
    );
    let m = run.join("manifest.json");
    std::fs::write(&m, r#"{"schema_version": 7}"#).unwrap();
    let e = joulebench::analysis::Run::load(&run)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("schema_version 7 is not supported"), "{e}");
}

#[test]
fn echoed_values_are_clipped_and_huge_regions_refused_at_once() {
    let big = "x".repeat(1_000_000);
    let e = err(&format!("name = \"s\"\n{W}optimizer = \"{big}\"\n"));
    assert!(
        e.len() < 1_500 && e.contains("(1000000 characters in all)"),
        "{}",
        &e[..200.min(e.len())]
    );
    let e = err(&format!("name = \"{big}\"\n{W}"));
    assert!(e.len() < 1_500, "{}", e.len());
    let t = Instant::now();
    let e = err(&format!("name = \"s\"\n[impact]\nregion = \"{big}\"\n{W}"));
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(
        e.len() < 1_500 && e.contains("impact.region"),
        "{}",
        &e[..200.min(e.len())]
    );
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_joulebench"));
    c.env_remove("JOULEBENCH_FASHION_MNIST");
    c
}

const SUITE: &str = r#"
name = "hard"
[defaults]
seeds = [1, 2]
epochs = 2
max_eval_samples = 200
[[workload]]
name = "mlp"
hidden = [32]
[[workload]]
name = "small"
model = "mlp"
hidden = [16]
[[variant]]
name = "b64"
batch_size = 64
"#;

/// The suite folder of `common::SuiteEnv`, with the run command these tests use.
struct Env(common::SuiteEnv);

impl std::ops::Deref for Env {
    type Target = common::SuiteEnv;
    fn deref(&self) -> &common::SuiteEnv {
        &self.0
    }
}

impl std::ops::DerefMut for Env {
    fn deref_mut(&mut self) -> &mut common::SuiteEnv {
        &mut self.0
    }
}

impl Env {
    fn new(suite: &str) -> Env {
        Env(common::SuiteEnv::new(suite))
    }

    /// `joulebench run s.toml --out out --meter fake --idle-seconds 0 --data-dir <fixture>`.
    fn command(&self) -> Command {
        self.run_cmd("0")
    }

    fn run(&self, extra: &[&str]) -> Output {
        self.command()
            .args(extra)
            .env("JOULEBENCH_LOG", "warn")
            .output()
            .unwrap()
    }

    fn run_dir(&self, suite: &str) -> PathBuf {
        let d = self.dir.path().join("out").join(suite);
        std::fs::read_dir(&d)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path()
    }
}

use common::text;

#[test]
fn a_filtered_run_resumes_with_its_filters_and_refuses_others() {
    let env = Env::new(SUITE);
    let o = env.run(&["--workload", "small"]);
    assert!(o.status.success(), "{}", text(&o));
    let run = env.run_dir("hard");
    let run_s = run.to_str().unwrap();
    let o = env.run(&["--workload", "small", "--resume", run_s]);
    assert!(o.status.success(), "the same filters resume: {}", text(&o));
    assert!(
        text(&o).contains("0 trial(s) run, 2 already present"),
        "{}",
        text(&o)
    );
    let o = env.run(&["--resume", run_s]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("was started with filters --workload small, but this command gives none"),
        "{}",
        text(&o)
    );
    let o = env.run(&["--workload", "mlp", "--resume", run_s]);
    assert!(
        text(&o).contains("but this command gives --workload mlp"),
        "{}",
        text(&o)
    );
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(
        report.contains("a filtered run: --workload small"),
        "{report}"
    );
}

#[test]
fn compare_refuses_bad_thresholds_and_runs_that_only_share_names() {
    let env = Env::new(SUITE);
    assert!(env.run(&["--workload", "small"]).status.success());
    let a = env.dir.path().join("run-a");
    std::fs::rename(env.run_dir("hard"), &a).unwrap();
    // Same names, other settings: a different hidden width for `small`.
    std::fs::write(
        env.dir.path().join("s.toml"),
        SUITE.replace("hidden = [16]", "hidden = [24]"),
    )
    .unwrap();
    assert!(env.run(&["--workload", "small"]).status.success());
    let b = env.run_dir("hard");
    for bad in ["NaN", "inf", "-1", "5000"] {
        let o = bin()
            .arg("compare")
            .arg(&b)
            .arg(&b)
            .arg(format!("--energy-threshold={bad}"))
            .output()
            .unwrap();
        assert!(
            !o.status.success() && text(&o).contains("a percentage, a number in [0, 1000]"),
            "{bad}: {}",
            text(&o)
        );
    }
    let o = bin()
        .arg("compare")
        .arg(&b)
        .arg(&b)
        .arg("--accuracy-threshold=NaN")
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", text(&o));
    let o = bin().arg("compare").arg(&a).arg(&b).output().unwrap();
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("small/b64: size"), "{}", text(&o));
    let o = bin()
        .arg("compare")
        .arg(&a)
        .arg(&b)
        .arg("--allow-different-configs")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("note: settings differ for small/b64"),
        "{}",
        text(&o)
    );
}

#[test]
fn a_trial_that_cannot_fit_fails_with_the_estimate_and_the_suite_goes_on() {
    let suite = SUITE.replace("hidden = [32]", "hidden = [65536, 65536, 65536]");
    let env = Env::new(&suite);
    let o = env.run(&[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let recs =
        joulebench::runfolder::store::read_records(&env.run_dir("hard").join("trials.jsonl"))
            .unwrap()
            .0;
    assert_eq!(recs.len(), 4);
    let failed: Vec<_> = recs.iter().filter(|r| r.key.workload == "mlp").collect();
    for r in failed {
        let joulebench::record::TrialStatus::Failed { error } = &r.status else {
            panic!("{:?}", r.status)
        };
        assert!(
            error.contains("needs about") && error.contains("GiB of memory is available"),
            "{error}"
        );
    }
    assert!(
        recs.iter()
            .filter(|r| r.key.workload == "small")
            .all(|r| r.status == joulebench::record::TrialStatus::Completed)
    );
    // The reason reaches a warnings-only log and the end-of-run table.
    let t = text(&o);
    assert!(t.contains("WARN") && t.contains("needs about"), "{t}");
    assert!(
        t.contains("failed mlp/b64/s1/r0: this trial needs about"),
        "{t}"
    );
}

#[test]
fn an_empty_test_split_fails_the_trial_instead_of_reporting_zero() {
    let mut env = Env::new(
        "name = \"e\"\n[defaults]\nepochs = 1\n[[workload]]\nname = \"mlp\"\nhidden = [16]\n",
    );
    env.data = env.dir.path().join("empty");
    joulebench::data::fashion_mnist::write_fixture(&env.data, 5_600, 0, 3).unwrap();
    let o = env.run(&[]);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(t.contains("no samples") && !t.contains("0.00%"), "{t}");
}

fn wait_for_records(p: &Path, n: usize, limit: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if std::fs::read(p).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count()) >= n {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

const LONG: &str = r#"
name = "sig"
[defaults]
seeds = [1, 2, 3, 4, 5, 6]
epochs = 3
max_eval_samples = 200
[[workload]]
name = "mlp"
hidden = [256, 128]
[[variant]]
name = "b16"
batch_size = 16
"#;

#[test]
fn sigint_stops_after_the_trial_in_flight_and_resume_finishes_the_run() {
    let env = Env::new(LONG);
    let child = env
        .command()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = env.dir.path().join("out/sig");
    let t = Instant::now();
    let trials = loop {
        if let Some(Ok(e)) = std::fs::read_dir(&out).ok().and_then(|mut d| d.next()) {
            break e.path().join("trials.jsonl");
        }
        assert!(t.elapsed() < Duration::from_secs(60), "no run folder");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(wait_for_records(&trials, 1, Duration::from_secs(120)));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(130), "{t}");
    assert!(
        t.contains("interrupted by SIGINT") && t.contains("the trial in flight was not recorded"),
        "{t}"
    );
    let cmd = t
        .lines()
        .find_map(|l| l.strip_prefix("resume with: "))
        .expect("a resume command");
    assert!(
        cmd.contains("--resume") && cmd.contains("--meter fake"),
        "{cmd}"
    );
    let (recs, _, torn) = joulebench::runfolder::store::read_records(&trials).unwrap();
    assert_eq!(torn, 0, "no half-written record");
    assert!(
        recs.len() < 6
            && recs
                .iter()
                .all(|r| r.status == joulebench::record::TrialStatus::Completed)
    );
    // The printed command (the binary, then its arguments) finishes the run.
    let args: Vec<&str> = cmd.split(' ').skip(1).collect();
    let o = bin()
        .current_dir(env.dir.path())
        .args(&args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let (recs, _, _) = joulebench::runfolder::store::read_records(&trials).unwrap();
    let mut keys: Vec<String> = recs.iter().map(|r| r.key.to_string()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!((recs.len(), keys.len()), (6, 6), "every trial exactly once");
}

#[test]
fn a_second_signal_exits_at_once() {
    let env = Env::new(&LONG.replace("epochs = 3", "epochs = 50"));
    let child = env
        .command()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(60) && !env.dir.path().join("out/sig").exists() {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    std::thread::sleep(Duration::from_millis(20));
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let t = Instant::now();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(143));
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}
