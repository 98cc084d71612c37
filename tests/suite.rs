//! Suite parsing: good files expand to the right plan; each bad input gives
//! its specific message naming file, field, value and what is allowed.

use joulebench::config::OptimizerKind;
use joulebench::suite::Suite;
use std::path::Path;

const GOOD: &str = r#"
name = "demo"
baseline = "small"
[defaults]
seeds = [3, 4]
repeats = 2
epochs = 2
learning_rate = 0.002
max_train_samples = 1000
[[workload]]
name = "mlp"
[[workload]]
name = "conv"
model = "cnn"
epochs = 1
[[variant]]
name = "big"
batch_size = 256
[[variant]]
name = "small"
batch_size = 16
optimizer = "sgd"
learning_rate = 0.05
"#;

fn parse(text: &str) -> Result<Suite, String> {
    Suite::parse(Path::new("exp/s.toml"), text).map_err(|e| e.to_string())
}

fn err(text: &str) -> String {
    parse(text).expect_err("suite should be rejected")
}

#[test]
fn good_suite_expands_to_the_full_plan_in_order() {
    let s = parse(GOOD).unwrap();
    assert_eq!(s.baseline, "small");
    let plan = s.plan().unwrap();
    // 2 workloads x 2 seeds x 2 repeats x 2 variants
    assert_eq!(plan.trials.len(), 16);
    let keys: Vec<String> = plan.trials.iter().map(|t| t.key.to_string()).collect();
    assert_eq!(
        &keys[..5],
        &[
            "mlp/big/s3/r0",
            "mlp/small/s3/r0",
            "mlp/big/s3/r1",
            "mlp/small/s3/r1",
            "mlp/big/s4/r0"
        ]
    );
    assert_eq!(keys[8], "conv/big/s3/r0");
    // Layering: defaults < workload < variant.
    let t = &plan.trials[1].config; // mlp/small
    assert_eq!(t.batch_size, 16);
    assert_eq!(t.optimizer.kind, OptimizerKind::Sgd);
    assert_eq!(t.optimizer.learning_rate, 0.05);
    assert_eq!(t.epochs, 2);
    assert_eq!(t.max_train_samples, Some(1000));
    let c = &plan.trials[8].config; // conv/big
    assert_eq!(c.epochs, 1);
    assert_eq!(c.optimizer.learning_rate, 0.002);
    assert_eq!(c.optimizer.kind, OptimizerKind::Adamw);
    assert_eq!(c.batch_size, 256);
    assert_eq!(
        plan.trials.iter().map(|t| t.index).collect::<Vec<_>>(),
        (0..16).collect::<Vec<_>>()
    );
}

#[test]
fn minimal_suite_gets_defaults_and_an_implicit_baseline() {
    let s = parse("name = \"m\"\n[[workload]]\nname = \"mlp\"\n").unwrap();
    let plan = s.plan().unwrap();
    assert_eq!(plan.trials.len(), 1);
    let c = &plan.trials[0].config;
    assert_eq!((c.epochs, c.batch_size, c.eval_batch_size), (1, 128, 1000));
    assert_eq!(c.optimizer.learning_rate, 1e-3);
    assert_eq!(s.baseline, "baseline");
    assert_eq!(plan.trials[0].key.seed, 0);
}

#[test]
fn shipped_suites_validate() {
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/experiments")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "toml") {
            let s = Suite::load(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert!(!s.plan().unwrap().trials.is_empty());
        }
    }
}

const HEAD: &str = "name = \"t\"\n";
const W: &str = "[[workload]]\nname = \"mlp\"\n";

#[test]
fn unknown_key_is_named_with_the_file() {
    let e = err(&format!("{HEAD}colour = 3\n{W}"));
    assert!(e.starts_with("exp/s.toml:"), "{e}");
    assert!(e.contains("unknown field `colour`"), "{e}");
    let e = err(&format!("{HEAD}[defaults]\nbatchsize = 3\n{W}"));
    assert!(
        e.contains("field `defaults.batchsize` = 3: unknown field `batchsize`, expected one of"),
        "{e}"
    );
    let e = err(&format!("{HEAD}{W}lr = 1\n"));
    assert!(
        e.contains("field `workload[mlp].lr` = 1: unknown field `lr`"),
        "{e}"
    );
}

#[test]
fn unknown_workload_model_lists_known_ones() {
    let e = err(&format!(
        "{HEAD}[[workload]]\nname = \"w\"\nmodel = \"resnet\"\n"
    ));
    assert_eq!(
        e,
        "exp/s.toml: field `workload[w].model`: unknown workload model `resnet`; known: mlp, cnn, separable-cnn, standard-cnn, char-transformer"
    );
}

#[test]
fn unknown_baseline_variant_lists_known_ones() {
    let e = err(&format!(
        "{HEAD}baseline = \"nope\"\n{W}[[variant]]\nname = \"a\"\n[[variant]]\nname = \"b\"\n"
    ));
    assert_eq!(
        e,
        "exp/s.toml: field `baseline`: unknown variant `nope`; known: a, b"
    );
}

#[test]
fn impossible_values_are_rejected_with_what_is_allowed() {
    let cases = [
        (
            format!("{HEAD}{W}[[variant]]\nname = \"v\"\nbatch_size = 0\n"),
            "field `variant[v].batch_size` = 0 is not allowed: batch size must be an integer >= 1",
        ),
        (
            format!("{HEAD}[defaults]\nlearning_rate = -0.1\n{W}"),
            "field `defaults.learning_rate` = -0.1 is not allowed: learning rate must be a finite number in (0, 10]",
        ),
        (
            format!("{HEAD}[defaults]\nseeds = []\n{W}"),
            "field `defaults.seeds` = [] is not allowed: give at least one seed",
        ),
        (
            format!("{HEAD}[defaults]\nseeds = [1, 1]\n{W}"),
            "field `defaults.seeds` = 1 is not allowed: each seed may appear once",
        ),
        (
            format!("{HEAD}[defaults]\nrepeats = 0\n{W}"),
            "field `defaults.repeats` = 0 is not allowed: repeats must be an integer in 1..=1000",
        ),
        (
            format!("{HEAD}[defaults]\nepochs = -2\n{W}"),
            "field `defaults.epochs` = -2 is not allowed: epochs must be an integer >= 1",
        ),
        (
            format!("{HEAD}{W}momentum = 1.0\n"),
            "field `workload[mlp].momentum` = 1 is not allowed: momentum must be in [0, 1)",
        ),
        (
            format!("{HEAD}{W}max_train_samples = 0\n"),
            "field `workload[mlp].max_train_samples` = 0 is not allowed",
        ),
        (
            format!("{HEAD}{W}optimizer = \"lion\"\n"),
            "field `workload[mlp].optimizer`: unknown optimizer `lion`; known: adamw, sgd",
        ),
        (
            format!("{HEAD}[meter]\nkind = \"rapl9\"\n{W}"),
            "field `meter.kind`: unknown meter `rapl9`",
        ),
        (
            format!("{HEAD}[meter]\ncpu_watts_per_core = 0.0\n{W}"),
            "field `meter.cpu_watts_per_core` = 0 is not allowed",
        ),
        (
            HEAD.to_string(),
            "field `workload` = (none) is not allowed: a suite needs at least one [[workload]]",
        ),
        (
            format!("{HEAD}{W}{W}"),
            "field `workload[1].name` = mlp is not allowed: workload names must be unique",
        ),
        (
            format!("name = \"a b\"\n{W}"),
            "field `name` = \"a b\" is not allowed",
        ),
        (
            format!("{HEAD}{W}[[variant]]\nname = \"v\"\nmodel = \"cnn\"\n"),
            "a variant changes techniques, not the model",
        ),
    ];
    for (text, want) in cases {
        let e = err(&text);
        assert!(e.starts_with("exp/s.toml: "), "{e}");
        assert!(e.contains(want), "\n got: {e}\nwant: {want}");
    }
}

#[test]
fn wrong_types_and_bad_toml_name_the_file() {
    let e = err(&format!("{HEAD}[defaults]\nepochs = \"ten\"\n{W}"));
    assert_eq!(
        e,
        "exp/s.toml: field `defaults.epochs` = \"ten\": invalid type: string \"ten\", expected i64"
    );
    let e = err("name = \"x\"\n[[workload]\n");
    assert!(e.starts_with("exp/s.toml:") && e.contains("line 2"), "{e}");
    let e = Suite::load(Path::new("/nonexistent/s.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cannot read suite file /nonexistent/s.toml"),
        "{e}"
    );
}

#[test]
fn cli_filters_reject_unknown_names() {
    let mut s = parse(GOOD).unwrap();
    let e = s.select(&["gpt".into()], &[]).unwrap_err().to_string();
    assert!(
        e.contains("field `--workload`: unknown workload `gpt`; known: mlp, conv"),
        "{e}"
    );
    let e = s.select(&[], &["huge".into()]).unwrap_err().to_string();
    assert!(
        e.contains("unknown variant `huge`; known: big, small"),
        "{e}"
    );
    s.select(&["conv".into()], &["big".into()]).unwrap();
    assert_eq!(s.plan().unwrap().trials.len(), 4);
}
