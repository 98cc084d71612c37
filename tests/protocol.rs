//! The run protocol: variants in a seeded shuffled order within each seed
//! (or the listed order), a discarded warm-up before each workload's first
//! trial, and adaptive seeds that stop when every comparison is resolved.

mod common;

use common::{SuiteEnv as Env, text};
use joulebench::config::protocol::Order;
use joulebench::record::seeds::SeedDecisions;
use joulebench::suite::Suite;
use std::path::Path;

const SUITE: &str = r#"
name = "proto"
baseline = "b128"
[defaults]
seeds = [1, 2, 3]
epochs = 1
max_train_samples = 1024
max_eval_samples = 100
[[workload]]
name = "mlp"
hidden = [16]
[[variant]]
name = "b128"
batch_size = 128
[[variant]]
name = "b64"
batch_size = 64
[[variant]]
name = "b32"
batch_size = 32
[[variant]]
name = "b16"
batch_size = 16
"#;

fn records(run: &Path) -> Vec<joulebench::record::TrialRecord> {
    joulebench::runfolder::store::read_records(&run.join("trials.jsonl"))
        .unwrap()
        .0
}

fn run_dir(env: &Env, suite: &str) -> std::path::PathBuf {
    let d = env.path(&format!("out/{suite}"));
    let runs: Vec<_> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs[0].clone()
}

#[test]
fn variants_run_in_a_seeded_shuffle_within_each_seed_or_as_listed() {
    let s = Suite::parse(Path::new("s.toml"), SUITE).unwrap();
    assert_eq!(s.protocol.order, Order::Shuffled);
    let plan = s.plan().unwrap();
    let order = |p: &joulebench::config::protocol::Protocol| -> Vec<String> {
        plan.run_order(p)
            .iter()
            .map(|t| t.key.to_string())
            .collect()
    };
    let shuffled = order(&s.protocol);
    // Same suite, same order; every trial once; seeds stay in blocks.
    assert_eq!(shuffled, order(&s.protocol));
    let mut sorted = shuffled.clone();
    sorted.sort();
    let mut planned: Vec<String> = plan.trials.iter().map(|t| t.key.to_string()).collect();
    planned.sort();
    assert_eq!(sorted, planned);
    for (i, k) in shuffled.iter().enumerate() {
        assert!(k.contains(&format!("/s{}/", i / 4 + 1)), "{shuffled:?}");
    }
    // With 4 variants and 3 seeds, some block differs from the listed order,
    // and the baseline is not always first.
    let firsts: Vec<&String> = shuffled.iter().step_by(4).collect();
    assert!(firsts.iter().any(|k| !k.contains("/b128/")), "{shuffled:?}");
    let fixed = Suite::parse(
        Path::new("s.toml"),
        &SUITE.replace("[defaults]", "[protocol]\norder = \"fixed\"\n[defaults]"),
    )
    .unwrap();
    let listed: Vec<String> = plan.trials.iter().map(|t| t.key.to_string()).collect();
    assert_eq!(order(&fixed.protocol), listed);
    // Another order seed, another shuffle.
    let other = Suite::parse(
        Path::new("s.toml"),
        &SUITE.replace("[defaults]", "[protocol]\norder_seed = 7\n[defaults]"),
    )
    .unwrap();
    assert_ne!(order(&other.protocol), shuffled);
}

#[test]
fn bad_protocol_values_name_their_field() {
    for (patch, want) in [
        (
            "[protocol]\norder = \"random\"\n",
            "field `protocol.order`: unknown trial order `random`; known: shuffled, fixed",
        ),
        (
            "[protocol]\nwarmup_steps = -1\n",
            "field `protocol.warmup_steps` = -1 is not allowed",
        ),
        (
            "[protocol]\norder_seed = -3\n",
            "field `protocol.order_seed` = -3 is not allowed",
        ),
    ] {
        let e = Suite::parse(
            Path::new("s.toml"),
            &SUITE.replace("[defaults]", &format!("{patch}[defaults]")),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains(want), "{e}");
    }
    for (seeds, want) in [
        (
            "{ min = 1, max = 4 }",
            "field `defaults.seeds.min` = 1 is not allowed: at least 2 seeds",
        ),
        (
            "{ min = 3, max = 2 }",
            "field `defaults.seeds.max` = 2 is not allowed: an integer from min (3)",
        ),
        (
            "{ min = 3 }",
            "adaptive seeds are { first = 1, min = 3, max = 10, margin_pct = 5 } (max required)",
        ),
        (
            "{ max = 4, margin_pct = 0 }",
            "field `defaults.seeds.margin_pct` = 0 is not allowed",
        ),
        ("{ max = 4, step = 2 }", "unknown field `step`"),
        (
            "\"three\"",
            "a list of seeds, e.g. [1, 2, 3], or { first = 1",
        ),
    ] {
        let e = Suite::parse(
            Path::new("s.toml"),
            &SUITE.replace("seeds = [1, 2, 3]", &format!("seeds = {seeds}")),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains(want), "{seeds}: {e}");
    }
}

#[test]
fn each_workloads_first_trial_follows_a_discarded_warmup() {
    let two = SUITE.replace("seeds = [1, 2, 3]", "seeds = [1]").replace(
        "[[variant]]\nname = \"b128\"",
        "[[workload]]\nname = \"cnn\"\nmodel = \"cnn\"\nchannels = [4, 8]\nfc_width = 16\n[[variant]]\nname = \"b128\"",
    );
    let env = Env::new(&two.replace("[defaults]", "[protocol]\nwarmup_steps = 5\n[defaults]"));
    let o = env.run_cmd("0").output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let recs = records(&run_dir(&env, "proto"));
    assert_eq!(recs.len(), 8);
    let mut warmed: Vec<&str> = Vec::new();
    for r in &recs {
        if let Some(w) = &r.warmup {
            assert_eq!((w.steps, w.outcome.as_str()), (5, "completed"), "{}", r.key);
            warmed.push(&r.key.workload);
        }
    }
    warmed.sort();
    assert_eq!(
        warmed,
        ["cnn", "mlp"],
        "one warm-up per workload, before its first trial"
    );
    // The warm-up precedes the first trial that ran for its workload.
    for w in ["mlp", "cnn"] {
        let first = recs
            .iter()
            .filter(|r| r.key.workload == w)
            .min_by_key(|r| r.started_at.clone())
            .unwrap();
        assert!(first.warmup.is_some(), "{w}: {}", first.key);
    }
    // warmup_steps = 0 turns it off.
    let env = Env::new(
        &SUITE
            .replace("seeds = [1, 2, 3]", "seeds = [1]")
            .replace("[defaults]", "[protocol]\nwarmup_steps = 0\n[defaults]"),
    );
    let o = env.run_cmd("0").output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        records(&run_dir(&env, "proto"))
            .iter()
            .all(|r| r.warmup.is_none())
    );
}

#[test]
fn adaptive_seeds_stop_when_every_comparison_is_resolved() {
    // b16 costs several times b128's wall time (the fake meter's joules
    // are constant power x wall time): resolved after the minimum of 3 seeds.
    let suite = SUITE
        .replace("seeds = [1, 2, 3]", "seeds = { first = 5, min = 3, max = 6, margin_pct = 5 }")
        .replace("[[variant]]\nname = \"b64\"\nbatch_size = 64\n[[variant]]\nname = \"b32\"\nbatch_size = 32\n", "")
        .replace("hidden = [16]", "hidden = [256]")
        .replace("max_train_samples = 1024", "max_train_samples = 4096");
    let env = Env::new(&suite);
    let o = env.bin().args(["validate", "s.toml"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("adaptive"), "{}", text(&o));
    let o = env.run_cmd("0").output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let run = run_dir(&env, "proto");
    let recs = records(&run);
    let d: SeedDecisions =
        serde_json::from_slice(&std::fs::read(run.join("seeds.json")).unwrap()).unwrap();
    let w = &d.workloads[0];
    // At least the minimum, consecutive from `first`, stopped before the cap
    // (the fake meter's joules follow wall time, so a loaded machine may need a seed more).
    assert_eq!(w.state, "resolved", "{d:?}");
    assert!((3..6).contains(&w.seeds.len()), "{d:?}");
    assert_eq!(w.seeds, (5..5 + w.seeds.len() as u64).collect::<Vec<_>>());
    let c = &w.comparisons[0];
    assert!(
        c.resolved && c.pairs == w.seeds.len() && c.low_pct > 0.0,
        "{c:?}"
    );
    assert_eq!(
        recs.len(),
        2 * w.seeds.len(),
        "both variants per seed, no seed after the stop"
    );
    // Seeds the rule did not need are not reported missing.
    let r = joulebench::analysis::Run::load(&run).unwrap();
    assert!(r.missing.is_empty(), "{:?}", r.missing);
    // Sharded runs cannot decide seeds alone.
    let o = env
        .run_cmd("0")
        .args(["--shard", "0/2", "--run-dir", "shared"])
        .output()
        .unwrap();
    assert!(
        !o.status.success() && text(&o).contains("adaptive seeds"),
        "{}",
        text(&o)
    );
}
